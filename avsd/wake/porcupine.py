"""Picovoice Porcupine (optional: ``pip install pvporcupine``); needs an AccessKey from console.picovoice.ai.

Porcupine reports keyword hits, not scores, and fixes its sensitivity at creation, so the playback "raise"
policy is implemented with a second, less sensitive handle that runs only while the device speaks.
Note: the AccessKey is validated online at start (Picovoice/porcupine#804) and counts against device limits.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from avsd.audio.frames import SAMPLE_RATE
from avsd.audio.onset import OnsetTracker
from avsd.errors import WakeWordError
from avsd.wake.base import Detection, DuringPlayback, WakeSettings, require

_LOGGER = logging.getLogger(__name__)

DEFAULT_SENSITIVITY = 0.5
DEFAULT_PLAYBACK_SENSITIVITY = 0.2


class PorcupineEngine:
    name = "porcupine"

    def __init__(self, settings: WakeSettings) -> None:
        key = settings.access_key()
        if not key:
            raise WakeWordError(
                "porcupine needs a Picovoice AccessKey: create a free account at "
                "https://console.picovoice.ai/, "
                "copy the AccessKey, and set [wake] porcupine_access_key in the config file or the "
                "PORCUPINE_ACCESS_KEY environment variable (e.g. in a systemd drop-in)"
            )
        require("pvporcupine", "pvporcupine")
        import pvporcupine

        self.keyword = settings.keyword.lower()
        sensitivity = settings.threshold if settings.threshold is not None else DEFAULT_SENSITIVITY
        playback = (
            settings.playback_threshold
            if settings.playback_threshold is not None
            else min(DEFAULT_PLAYBACK_SENSITIVITY, sensitivity)
        )
        self._policy = DuringPlayback(settings.during_playback)
        try:
            self._normal: Any = pvporcupine.create(
                access_key=key, keywords=[self.keyword], sensitivities=[sensitivity]
            )
            self._quiet: Any = None
            if self._policy is DuringPlayback.RAISE:
                self._quiet = pvporcupine.create(
                    access_key=key, keywords=[self.keyword], sensitivities=[playback]
                )
        except Exception as exc:  # pvporcupine raises its own tree (activation, key, keyword) — map it once
            raise WakeWordError(f"porcupine could not start: {type(exc).__name__}: {exc}") from exc
        self._frame_length = int(self._normal.frame_length)
        self._pending = bytearray()
        self._refractory = round(settings.refractory_s * SAMPLE_RATE)
        self._quiet_until = -1
        self.boosted = False
        self.onsets = OnsetTracker()

    def process(self, frame: bytes, end_index: int) -> Detection | None:
        self.onsets.process(frame, end_index)
        self._pending += frame
        need = self._frame_length * 2
        hit = False
        while len(self._pending) >= need:
            pcm = np.frombuffer(bytes(self._pending[:need]), dtype="<i2").tolist()
            del self._pending[:need]
            handle = self._handle()
            if handle is not None and handle.process(pcm) >= 0:
                hit = True
        if not hit or end_index < self._quiet_until:
            return None
        self._quiet_until = end_index + self._refractory
        # Porcupine fires at the end of a 512-sample block; the pending tail is already past it.
        end = end_index - len(self._pending) // 2
        return Detection(self.name, self.keyword, 1.0, end, self.onsets.estimate_start(end))

    def _handle(self) -> Any:
        if not self.boosted or self._policy is DuringPlayback.NORMAL:
            return self._normal
        return self._quiet  # None for "ignore"

    def reset(self) -> None:
        self._pending.clear()
        self.onsets.reset()
        self._quiet_until = -1

    def set_sensitivity_boost(self, boosted: bool) -> None:
        self.boosted = boosted

    def close(self) -> None:
        for handle in (self._normal, self._quiet):
            if handle is not None:
                handle.delete()
