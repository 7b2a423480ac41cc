"""Shared policy for models that produce a probability per step: per-model thresholds, playback boost, one
refractory period and one wake-word start estimate. A :class:`Scorer` only turns frames into scores; a
:class:`ScoredEngine` runs one scorer (``micro``, ``openwakeword``) or several (the ``cascade``) under one policy.

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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avsd.audio.frames import SAMPLE_RATE
from avsd.audio.onset import OnsetTracker
from avsd.wake.base import Detection, DuringPlayback, WakeSettings

_LOGGER = logging.getLogger(__name__)
_LEVEL_FRAMES = 300  # 3 s of frame levels for the playback loudness check
_WORD_FRAMES = 100  # the last 1 s holds the wake word
# Start of the word: the *earliest* onset 0.3-1.2 s before the detection. Both models fire 0.1-0.6 s after the
# word ends, so "the latest onset" often picked a syllable inside a slow "A-lex-a" or the start of the command
# after it; measured on the hard synthetic set (bench_wake, 56 detections): p90 error 408 ms -> 135 ms, median
# 2.5 ms -> 2.3 ms. Both models share this one estimate (it depends only on when the detection happens).
_START_LOOKBACK_S = 1.2
_START_MIN_WORD_S = 0.3
# Agreement: in the cascade, both models scoring above their (lower) agreement thresholds within 0.5 s also wakes.
# Measured (bench_wake, thresholds 0.7 / 0.9): real recordings through room/microphone effects 83 % -> 92 % and
# the hard synthetic set 57 % -> 60 %, with no false wake in 32 min of non-wake speech either way. Not while the
# device speaks: there only the playback thresholds count.
_AGREE_WINDOW = round(0.5 * SAMPLE_RATE)


class Scorer(ABC):
    """One model: frames in, the highest new probability out (None when it produced no new output)."""

    name = "scorer"
    default_threshold = 0.5  # alone
    cascade_threshold = 0.5  # in the cascade, where the other model and the agreement rule also wake
    default_playback_threshold = 0.9
    default_agree_threshold = 0.5

    @abstractmethod
    def score(self, frame: bytes, levels: Sequence[float], end_index: int) -> float | None:
        """Feed a block of whole 10 ms frames ending at absolute sample ``end_index``; ``levels`` holds each
        frame's pre-emphasised level in dB (the onset tracker's), for scorers that gate themselves on it."""

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Thresholds:
    normal: float
    playback: float
    agree: float | None = None  # several models: all above their ``agree`` within _AGREE_WINDOW also wakes


def thresholds_for(settings: WakeSettings, scorer: Scorer, *, single: bool) -> Thresholds:
    """Per-model key (``wake.micro_threshold`` ...) first; the generic ``wake.threshold`` only for a single engine."""
    own = getattr(settings, f"{scorer.name}_threshold", None)
    generic = settings.threshold if single else None
    default = scorer.default_threshold if single else scorer.cascade_threshold
    normal = own if own is not None else generic if generic is not None else default
    own_pb = getattr(settings, f"{scorer.name}_playback_threshold", None)
    generic_pb = settings.playback_threshold if single else None
    playback = own_pb if own_pb is not None else generic_pb
    if playback is None:
        playback = max(scorer.default_playback_threshold, normal)
    agree = None
    if not single:
        own_agree = getattr(settings, f"{scorer.name}_agree_threshold", None)
        agree = own_agree if own_agree is not None else scorer.default_agree_threshold
    return Thresholds(normal, playback, agree)


class ModelState:
    """A scorer with its thresholds and score statistics (last, best, and where the best was)."""

    def __init__(self, scorer: Scorer, thresholds: Thresholds) -> None:
        self.scorer = scorer
        self.thresholds = thresholds
        self.last_score = 0.0
        self.max_score = 0.0
        self.max_index = -1  # absolute sample index at which max_score was produced
        self.agree_index = -_AGREE_WINDOW - 1  # latest index with a score above the agreement threshold
        self.agree_score = 0.0

    def clear(self) -> None:
        self.last_score = self.max_score = 0.0
        self.max_index = -1
        self.agree_index = -_AGREE_WINDOW - 1


class ScoredEngine:
    """Template: ``process`` feeds the onset tracker and every model, then applies the detection policy.

    With several models a detection by any of them wakes (the first in ``scorers`` order wins a tie); the
    refractory period and the start-of-word estimate are shared, so one "Alexa" heard by both is one wake.
    """

    name = "scored"

    def __init__(self, settings: WakeSettings, scorers: Sequence[Scorer], name: str | None = None) -> None:
        if not scorers:
            raise ValueError("a scored engine needs at least one scorer")
        self.settings = settings
        self.keyword = settings.keyword
        if name is not None:
            self.name = name
        single = len(scorers) == 1
        self.models = [ModelState(s, thresholds_for(settings, s, single=single)) for s in scorers]
        self._policy = DuringPlayback(settings.during_playback)
        self._refractory = round(settings.refractory_s * SAMPLE_RATE)
        self._quiet_until = -1
        self.boosted = False
        self.onsets = OnsetTracker()
        self._levels: deque[float] = deque(maxlen=_LEVEL_FRAMES)
        self._margin_db = settings.playback_margin_db

    # Single-model views, kept for callers and tests written against one engine.
    @property
    def threshold(self) -> float:
        return self.models[0].thresholds.normal

    @property
    def playback_threshold(self) -> float:
        return self.models[0].thresholds.playback

    @property
    def last_score(self) -> float:
        return max(m.last_score for m in self.models)

    @property
    def max_score(self) -> float:
        return max(m.max_score for m in self.models)

    def active_threshold(self, model: ModelState | None = None) -> float | None:
        """The threshold in force now; None when detection is suppressed (boost with policy "ignore")."""
        thresholds = (model or self.models[0]).thresholds
        if not self.boosted or self._policy is DuringPlayback.NORMAL:
            return thresholds.normal
        if self._policy is DuringPlayback.IGNORE:
            return None
        return thresholds.playback

    def process(self, frame: bytes, end_index: int) -> Detection | None:
        levels = self.onsets.process(frame, end_index)
        self._levels.extend(levels)
        fired: tuple[str, float, float] | None = None
        for model in self.models:
            score = model.scorer.score(frame, levels, end_index)
            if score is None:
                continue
            model.last_score = score
            if score > model.max_score:
                model.max_score, model.max_index = score, end_index
            agree = model.thresholds.agree
            if agree is not None and score > agree:
                model.agree_index, model.agree_score = end_index, score
            threshold = self.active_threshold(model)
            if fired is None and threshold is not None and score > threshold:
                fired = (model.scorer.name, score, threshold)
        if fired is None and self._agreement(end_index):
            names = "+".join(m.scorer.name for m in self.models)
            agreed = min(m.agree_score for m in self.models)
            fired = (names, agreed, min(m.thresholds.agree or 0.0 for m in self.models))
        if fired is None or end_index < self._quiet_until:
            return None
        name, score, threshold = fired
        if self.boosted and self._policy is DuringPlayback.RAISE and not self._louder_than_echo():
            _LOGGER.debug("wake word (%s %.3f) while speaking rejected: not louder than the echo", name, score)
            return None
        self._quiet_until = end_index + self._refractory
        start = self.estimate_start(end_index)
        _LOGGER.info("wake word %r (%s) score %.3f >= %.3f", self.keyword, name, score, threshold)
        return Detection(name, self.keyword, score, end_index, start)

    def _agreement(self, end_index: int) -> bool:
        if len(self.models) < 2 or (self.boosted and self._policy is not DuringPlayback.NORMAL):
            return False
        return all(m.thresholds.agree is not None and end_index - m.agree_index <= _AGREE_WINDOW for m in self.models)

    def estimate_start(self, end_index: int) -> int:
        """Where the wake word that was heard at ``end_index`` began (absolute sample index)."""
        return self.onsets.estimate_start(
            end_index, max_lookback_s=_START_LOOKBACK_S, min_word_s=_START_MIN_WORD_S, earliest=True
        )

    def _louder_than_echo(self) -> bool:
        levels = np.fromiter(self._levels, dtype=np.float64)
        if len(levels) <= _WORD_FRAMES + 10:
            return True  # no echo history to compare with
        word = float(levels[-_WORD_FRAMES:].max())
        echo = float(np.percentile(levels[:-_WORD_FRAMES], 95))
        return word - echo >= self._margin_db

    def reset(self) -> None:
        for model in self.models:
            model.scorer.reset()
            model.clear()
        self._levels.clear()
        self.onsets.reset()
        self._quiet_until = -1

    def set_sensitivity_boost(self, boosted: bool) -> None:
        if boosted != self.boosted:
            _LOGGER.debug("wake-word boost %s (policy %s)", "on" if boosted else "off", self._policy)
        self.boosted = boosted

    def close(self) -> None:
        for model in self.models:
            model.scorer.close()
