"""Route the C audio libraries' own error printing into avsd's log.

On a machine without a sound card, opening PortAudio makes libasound print ~30 ``ALSA lib ...`` lines (every
PCM alias in alsa.conf fails to resolve) and libjack another five, straight to stderr, for ``avsd doctor``,
``avsd devices`` and the demo. libasound lets a program replace that printer (``snd_lib_error_set_handler``),
libjack too (``jack_set_error_function`` / ``jack_set_info_function``). Installed once, process-wide, before
PortAudio loads: each message goes to this module's logger at DEBUG, and when ALSA has no card at all the log
gets one warning line instead: "no sound card found".

The handlers are called on whatever thread the library runs (PortAudio's, VLC's): they only call logging, which
is thread-safe, and never touch the event loop. libasound's handler is variadic; ctypes passes the fixed
arguments and the format string is logged unexpanded (the arguments are not needed to say what failed).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from typing import Any

_log = logging.getLogger(__name__)

NO_CARD_MESSAGE = "no sound card found (ALSA lists no cards; audio devices are unavailable)"

_AlsaHandler = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
)
_JackHandler = ctypes.CFUNCTYPE(None, ctypes.c_char_p)


class _State:
    """What must outlive the install call: the libraries and the C callbacks (freed callbacks would crash)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed = False
        self.asound: Any = None
        self.callbacks: list[Any] = []
        self.no_card_reported = False
        self.messages = 0


_state = _State()


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value else ""


def _has_card(asound: Any) -> bool:
    card = ctypes.c_int(-1)
    return bool(asound.snd_card_next(ctypes.byref(card)) == 0 and card.value >= 0)


def _on_alsa(file: bytes | None, line: int, function: bytes | None, err: int, fmt: bytes | None) -> None:
    try:
        _state.messages += 1
        _log.debug("ALSA %s:%d (%s) err=%d: %s", _text(file), line, _text(function), err, _text(fmt))
        with _state.lock:
            if _state.no_card_reported or _state.asound is None:
                return
            if not _has_card(_state.asound):
                _state.no_card_reported = True
                _log.warning(NO_CARD_MESSAGE)
    except Exception:  # a C callback must never raise (ctypes would only print it)
        return


def _on_jack(message: bytes | None) -> None:
    try:
        _state.messages += 1
        _log.debug("JACK: %s", _text(message))
    except Exception:
        return


def _load(name: str) -> Any:
    path = ctypes.util.find_library(name)
    if path is None:
        return None
    try:
        return ctypes.CDLL(path)
    except OSError:
        return None


def route_native_audio_errors() -> bool:
    """Install the handlers (idempotent). False when libasound is not there (nothing would print anyway)."""
    with _state.lock:
        if _state.installed:
            return _state.asound is not None
        _state.installed = True
        asound = _load("asound")
        if asound is not None:
            handler = _AlsaHandler(_on_alsa)
            asound.snd_lib_error_set_handler(handler)
            _state.asound = asound
            _state.callbacks.append(handler)
        jack = _load("jack")
        if jack is not None:
            jack_handler = _JackHandler(_on_jack)
            for setter in ("jack_set_error_function", "jack_set_info_function"):
                if hasattr(jack, setter):
                    getattr(jack, setter)(jack_handler)
            _state.callbacks.append(jack_handler)
        return asound is not None


def message_count() -> int:
    """How many library messages were routed so far (tests)."""
    return _state.messages
