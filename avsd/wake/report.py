"""Seeing what the wake stage does: a detection observer (``avsd demo``) and a WAV scan (``avsd doctor --wake``).

:func:`scan` runs every model of the configured wake stage over a WAV, each on its own and ungated (so a user
tuning thresholds sees each model's best score even where the cascade's gate would have kept openWakeWord
asleep), and then the configured stage itself, to show what would wake the device. Pure apart from the models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np

from avsd.audio.frames import SAMPLE_RATE
from avsd.wake.base import Detection, EngineName, WakeEngine, WakeSettings

_LOGGER = logging.getLogger(__name__)
_BLOCK = 1600 * 2  # 100 ms, as the daemon feeds the engine while idle
_PAD_S = 1.0  # both models need some audio before the word


class ObservedEngine:
    """A wake engine that also tells ``observer`` about each detection (an observer's error is only logged)."""

    def __init__(self, inner: WakeEngine, observer: Callable[[Detection], None]) -> None:
        self.inner = inner
        self.name = inner.name
        self._observer = observer

    def process(self, frame: bytes, end_index: int) -> Detection | None:
        detection = self.inner.process(frame, end_index)
        if detection is not None:
            try:
                self._observer(detection)
            except Exception:
                _LOGGER.exception("wake-word observer failed")
        return detection

    def reset(self) -> None:
        self.inner.reset()

    def set_sensitivity_boost(self, boosted: bool) -> None:
        self.inner.set_sensitivity_boost(boosted)

    def close(self) -> None:
        self.inner.close()


def describe(detection: Detection, first_index: int = 0) -> str:
    """One line for a person: which model fired, its score, where the word started and ended (seconds)."""
    start = (detection.start_index - first_index) / SAMPLE_RATE
    end = (detection.end_index - first_index) / SAMPLE_RATE
    return (f"wake word by {detection.engine} (score {detection.score:.2f}): "
            f"word from {start:.2f} s, heard at {end:.2f} s")


@dataclass(frozen=True, slots=True)
class ModelScan:
    model: str
    best_score: float
    best_at_s: float  # where the best score was produced, seconds into the WAV
    threshold: float


@dataclass(frozen=True, slots=True)
class ScanResult:
    models: tuple[ModelScan, ...]
    detections: tuple[Detection, ...]  # the configured stage (indices relative to the WAV's first sample)


def _feed(engine: WakeEngine, pcm: bytes) -> list[Detection]:
    found = []
    for offset in range(0, len(pcm) - _BLOCK + 1, _BLOCK):
        detection = engine.process(pcm[offset : offset + _BLOCK], (offset + _BLOCK) // 2)
        if detection is not None:
            found.append(detection)
    return found


def _shift(detection: Detection, pad: int) -> Detection:
    return replace(detection, start_index=max(0, detection.start_index - pad), end_index=detection.end_index - pad)


def scan(settings: WakeSettings, pcm: bytes) -> ScanResult:
    """Each model's best score over ``pcm`` (16 kHz S16_LE mono) and the configured stage's detections."""
    from avsd.root import select_engine  # the composition root builds every engine
    from avsd.wake.scored import ScoredEngine

    pad = round(_PAD_S * SAMPLE_RATE)
    padded = bytes(pad * 2) + pcm + bytes(pad * 2)
    engine_name = EngineName(settings.engine)
    models = [EngineName.MICRO, EngineName.OPENWAKEWORD] if engine_name is EngineName.CASCADE else [engine_name]
    scans: list[ModelScan] = []
    for model in models:
        if model in (EngineName.NONE, EngineName.PORCUPINE):
            continue  # no scores to show
        single = select_engine(replace(settings, engine=model))
        try:
            assert isinstance(single, ScoredEngine)
            _feed(single, padded)
            state = single.models[0]
            # the cascade's thresholds are the per-model keys; a single engine may also use wake.threshold
            thresholds = state.thresholds
            if engine_name is EngineName.CASCADE:
                from avsd.wake.scored import thresholds_for

                thresholds = thresholds_for(settings, state.scorer, single=False)
            at = max(0, state.max_index - pad) / SAMPLE_RATE if state.max_index >= 0 else 0.0
            scans.append(ModelScan(str(model), float(np.round(state.max_score, 4)), at, thresholds.normal))
        finally:
            single.close()
    stage = select_engine(settings)
    try:
        detections = tuple(_shift(d, pad) for d in _feed(stage, padded))
    finally:
        stage.close()
    return ScanResult(tuple(scans), detections)


def format_scan(result: ScanResult, engine: str) -> list[str]:
    lines = []
    for model in result.models:
        verdict = "above" if model.best_score > model.threshold else "below"
        lines.append(f"{model.model:>13}: best score {model.best_score:.3f} at {model.best_at_s:.2f} s "
                     f"({verdict} its threshold {model.threshold:.2f})")
    if result.detections:
        lines += [f"{engine:>13}: {describe(d)}" for d in result.detections]
    else:
        lines.append(f"{engine:>13}: would not wake on this recording")
    return lines


def doctor_wake(settings: WakeSettings, wav: Path, out: TextIO) -> int:
    """``avsd doctor --wake FILE.wav``: 0 when the configured stage wakes on the file, 1 when it would not,
    2 when the file cannot be read or the engine cannot start."""
    from avsd.audio.wav_source import load_wav
    from avsd.errors import AvsdError

    try:
        pcm = load_wav(wav)
        result = scan(settings, pcm)
    except AvsdError as exc:
        out.write(f"avsd doctor --wake: {exc}\n")
        return 2
    out.write(f"{wav}: {len(pcm) / 2 / SAMPLE_RATE:.2f} s, wake stage {settings.engine} "
              f"(padded with {_PAD_S:.0f} s of silence on both sides)\n")
    out.write("".join(f"  {line}\n" for line in format_scan(result, str(settings.engine))))
    out.write("  tune: wake.micro_threshold / wake.openwakeword_threshold a little below the best score of the "
              "model that should hear you (README: Wake word)\n")
    out.flush()
    return 0 if result.detections else 1
