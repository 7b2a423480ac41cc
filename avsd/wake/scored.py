"""Shared policy for engines that produce a probability per step: threshold, playback boost, refractory
period and the wake-word start estimate. Subclasses only turn a frame into scores.

Self-triggering: the models saturate (microWakeWord gives 0.99+ to the device's own attenuated,
reverberant "Alexa" as readily as to the user's), so a higher threshold alone cannot separate echo from user.
While boosted (policy "raise") a detection therefore also has to be *louder*: the loudest frame of the last
second must exceed the typical level of the preceding echo (95th percentile of frames 1-3 s earlier) by
``playback_margin_db``. A user talking over the device is closer than its speaker's echo, so they pass.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import deque

import numpy as np

from avsd.audio.frames import SAMPLE_RATE
from avsd.audio.onset import OnsetTracker
from avsd.wake.base import Detection, DuringPlayback, WakeSettings

_LOGGER = logging.getLogger(__name__)
_LEVEL_FRAMES = 300  # 3 s of frame levels for the playback loudness check
_WORD_FRAMES = 100  # the last 1 s holds the wake word


class ScoredEngine(ABC):
    """Template: ``process`` feeds the onset tracker and the model, then applies the detection policy."""

    name = "scored"
    default_threshold = 0.5
    default_playback_threshold = 0.9

    def __init__(self, settings: WakeSettings) -> None:
        self.settings = settings
        self.keyword = settings.keyword
        self.threshold = settings.threshold if settings.threshold is not None else self.default_threshold
        self.playback_threshold = (
            settings.playback_threshold
            if settings.playback_threshold is not None
            else max(self.default_playback_threshold, self.threshold)
        )
        self._policy = DuringPlayback(settings.during_playback)
        self._refractory = round(settings.refractory_s * SAMPLE_RATE)
        self._quiet_until = -1
        self.boosted = False
        self.onsets = OnsetTracker()
        self._levels: deque[float] = deque(maxlen=_LEVEL_FRAMES)
        self._margin_db = settings.playback_margin_db
        self.last_score = 0.0
        self.max_score = 0.0  # highest score seen since reset (for measurements)

    @abstractmethod
    def _score(self, frame: bytes) -> float | None:
        """Feed one frame to the model; return the highest new probability, or None if no new output."""

    @abstractmethod
    def _reset_model(self) -> None: ...

    @abstractmethod
    def _close_model(self) -> None: ...

    def active_threshold(self) -> float | None:
        """The threshold in force now; None when detection is suppressed (boost with policy "ignore")."""
        if not self.boosted or self._policy is DuringPlayback.NORMAL:
            return self.threshold
        if self._policy is DuringPlayback.IGNORE:
            return None
        return self.playback_threshold

    def process(self, frame: bytes, end_index: int) -> Detection | None:
        self._levels.extend(self.onsets.process(frame, end_index))
        score = self._score(frame)
        if score is None:
            return None
        self.last_score = score
        self.max_score = max(self.max_score, score)
        threshold = self.active_threshold()
        if threshold is None or score <= threshold or end_index < self._quiet_until:
            return None
        if self.boosted and self._policy is DuringPlayback.RAISE and not self._louder_than_echo():
            _LOGGER.debug("wake word (score %.3f) while speaking rejected: not louder than the echo", score)
            return None
        self._quiet_until = end_index + self._refractory
        start = self.onsets.estimate_start(end_index)
        _LOGGER.info("wake word %r (%s) score %.3f >= %.3f", self.keyword, self.name, score, threshold)
        return Detection(self.name, self.keyword, score, end_index, start)

    def _louder_than_echo(self) -> bool:
        levels = np.fromiter(self._levels, dtype=np.float64)
        if len(levels) <= _WORD_FRAMES + 10:
            return True  # no echo history to compare with
        word = float(levels[-_WORD_FRAMES:].max())
        echo = float(np.percentile(levels[:-_WORD_FRAMES], 95))
        return word - echo >= self._margin_db

    def reset(self) -> None:
        self._reset_model()
        self._levels.clear()
        self.onsets.reset()
        self._quiet_until = -1
        self.last_score = 0.0
        self.max_score = 0.0

    def set_sensitivity_boost(self, boosted: bool) -> None:
        if boosted != self.boosted:
            _LOGGER.debug("wake-word boost %s (policy %s)", "on" if boosted else "off", self._policy)
        self.boosted = boosted

    def close(self) -> None:
        self._close_model()
