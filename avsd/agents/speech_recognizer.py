"""SpeechRecognizer 2.0 directives (protocol reference §6.1): StopCapture and ExpectSpeech.

The capture itself lives in :mod:`avsd.dialog`; this agent turns directives into its calls and reports the
``RecognizerState`` context.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from avsd.avs.messages import Directive
from avsd.errors import DirectiveParseError

_LOGGER = logging.getLogger(__name__)
NAMESPACE = "SpeechRecognizer"


class Recognizer(Protocol):
    def stop_capture(self) -> None: ...

    def expect_speech(self, timeout_s: float, initiator: Mapping[str, Any] | None) -> bool: ...


class SpeechRecognizerAgent:
    def __init__(self, recognizer: Recognizer) -> None:
        self._recognizer = recognizer

    def handles(self) -> Collection[tuple[str, str]]:
        return {(NAMESPACE, "StopCapture"), (NAMESPACE, "ExpectSpeech")}

    def blocking(self, directive: Directive) -> bool:
        return False

    async def handle(self, directive: Directive) -> None:
        if directive.name == "StopCapture":
            self._recognizer.stop_capture()
            return
        timeout = directive.payload.get("timeoutInMilliseconds")
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise DirectiveParseError("ExpectSpeech needs a positive timeoutInMilliseconds", directive.raw)
        initiator = directive.payload.get("initiator")
        if initiator is not None and not isinstance(initiator, Mapping):
            raise DirectiveParseError("ExpectSpeech initiator must be an object", directive.raw)
        if not self._recognizer.expect_speech(timeout / 1000.0, initiator):
            _LOGGER.warning("ExpectSpeech arrived while the device is busy; ignored")

    async def cancel(self, directive: Directive) -> None:
        return None
