"""Wake-word engines behind one small protocol, and their settings. Which engine runs is chosen by the composition
root (:func:`avsd.root.select_engine`), not here.

Engines: ``cascade`` (the default: microWakeWord always, openWakeWord while there is speech; either wakes),
``micro`` (microWakeWord, pymicro-wakeword), ``openwakeword`` (pyopen-wakeword), ``porcupine``
(pvporcupine, optional, needs a Picovoice AccessKey), ``none`` (never fires; push-to-talk only). Each engine
module is imported lazily, so a missing optional package only matters when it is chosen; import failures
become :class:`~avsd.errors.WakeWordError` with the command that fixes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Protocol, TypeVar, runtime_checkable

from avsd.errors import WakeWordError

_E = TypeVar("_E", bound=Enum)


class EngineName(StrEnum):
    CASCADE = "cascade"
    MICRO = "micro"
    OPENWAKEWORD = "openwakeword"
    PORCUPINE = "porcupine"
    NONE = "none"


class DuringPlayback(StrEnum):
    """What the wake word does while the device itself is speaking (its own voice must not wake it)."""

    RAISE = "raise"  # use playback_threshold instead of threshold
    IGNORE = "ignore"  # no wake word while speaking; the button still barges in
    NORMAL = "normal"  # no change (only with acoustic echo cancellation upstream)


@dataclass(frozen=True, slots=True)
class Detection:
    engine: str
    keyword: str
    score: float
    end_index: int  # absolute sample index where the wake word ended (the detection point)
    start_index: int  # absolute sample index where the wake word began (estimated from the speech onset)


@runtime_checkable
class WakeEngine(Protocol):
    name: str

    def process(self, frame: bytes, end_index: int) -> Detection | None:
        """Feed one 10 ms frame; ``end_index`` is the absolute sample index just after it."""
        ...

    def reset(self) -> None: ...

    def set_sensitivity_boost(self, boosted: bool) -> None:
        """True while the device plays its own speech: the policy in WakeSettings.during_playback applies."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WakeSettings:
    """Wake-word engine choice and thresholds."""

    engine: str = field(
        default=EngineName.CASCADE,
        metadata={
            "help": "Wake-word engine (cascade: microWakeWord always, openWakeWord while there is speech)",
            "choices": tuple(EngineName),
        },
    )
    keyword: str = field(default="alexa", metadata={"help": "Wake word (built-in model name)"})
    threshold: float | None = field(
        default=None,
        metadata={
            "help": "Detection threshold 0..1 of a single engine (engine default when unset; the cascade "
            "uses the per-model keys below)",
            "min": 0.0,
            "max": 1.0,
        },
    )
    micro_threshold: float | None = field(
        default=None,
        metadata={
            "help": "microWakeWord threshold (unset: 0.9 alone, 0.7 in the cascade)",
            "min": 0.0,
            "max": 1.0,
        },
    )
    openwakeword_threshold: float | None = field(
        default=None,
        metadata={
            "help": "openWakeWord threshold (unset: 0.5 alone, 0.9 in the cascade)",
            "min": 0.0,
            "max": 1.0,
        },
    )
    micro_agree_threshold: float | None = field(
        default=None,
        metadata={
            "help": "cascade: microWakeWord and openWakeWord both above their agree thresholds within 0.5 s "
            "also wakes (0.3 when unset)",
            "min": 0.0,
            "max": 1.0,
        },
    )
    openwakeword_agree_threshold: float | None = field(
        default=None,
        metadata={"help": "cascade: openWakeWord's agree threshold (0.1 when unset)", "min": 0.0, "max": 1.0},
    )
    gate_db: float = field(
        default=6.0,
        metadata={
            "help": "cascade: openWakeWord runs while the sound is this far above the noise floor (dB)",
            "min": 1.0,
            "max": 30.0,
        },
    )
    refractory_s: float = field(
        default=2.0,
        metadata={"help": "Ignore further detections for this long after one", "min": 0.0, "max": 10.0},
    )
    during_playback: str = field(
        default=DuringPlayback.RAISE,
        metadata={
            "help": "Wake word while the device speaks: raise threshold, ignore, or normal",
            "choices": tuple(DuringPlayback),
        },
    )
    playback_threshold: float | None = field(
        default=None,
        metadata={
            "help": "Threshold while the device speaks, with during_playback = raise (engine default "
            "when unset)",
            "min": 0.0,
            "max": 1.0,
        },
    )
    micro_playback_threshold: float | None = field(
        default=None,
        metadata={"help": "microWakeWord threshold while the device speaks (0.97 when unset)", "min": 0.0, "max": 1.0},
    )
    openwakeword_playback_threshold: float | None = field(
        default=None,
        metadata={"help": "openWakeWord threshold while the device speaks (0.9 when unset)", "min": 0.0, "max": 1.0},
    )
    playback_margin_db: float = field(
        default=6.0,
        metadata={
            "help": "While the device speaks, the wake word must be this much louder than the device's "
            "own echo (dB)",
            "min": 0.0,
            "max": 30.0,
        },
    )
    porcupine_access_key: str = field(
        default="",
        metadata={"help": "Picovoice AccessKey for porcupine (or env PORCUPINE_ACCESS_KEY)", "secret": True},
    )

    def __post_init__(self) -> None:
        if self.engine not in tuple(EngineName):
            raise ValueError(f"engine must be one of {', '.join(EngineName)}, not {self.engine!r}")
        if self.during_playback not in tuple(DuringPlayback):
            raise ValueError(f"during_playback must be one of {', '.join(DuringPlayback)}")
        for name in (
            "threshold",
            "playback_threshold",
            "micro_threshold",
            "openwakeword_threshold",
            "micro_playback_threshold",
            "openwakeword_playback_threshold",
            "micro_agree_threshold",
            "openwakeword_agree_threshold",
        ):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1")

    def access_key(self) -> str:
        return self.porcupine_access_key or os.environ.get("PORCUPINE_ACCESS_KEY", "")


def builtin_model(models: type[_E], keyword: str, engine: str) -> _E:
    """The engine's built-in model for ``keyword`` ("Hey Jarvis" -> ``hey_jarvis``), or WakeWordError listing them."""
    try:
        return models(keyword.lower().replace(" ", "_"))
    except ValueError as exc:
        choices = ", ".join(str(m.value) for m in models)
        raise WakeWordError(f"{engine} has no built-in {keyword!r} model ({choices})") from exc


def require(module: str, package: str) -> None:
    """Raise WakeWordError naming the pip package when ``module`` cannot be imported."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise WakeWordError(f"{module} is not installed: run `pip install {package}` in avsd's venv") from exc
