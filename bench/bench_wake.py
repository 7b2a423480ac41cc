"""Wake-word benchmark: idle CPU per engine and detection rate / false triggers on synthetic speech.

idle_cpu_percent_<engine>: process CPU time while feeding 60 s of low-level noise frames at full speed, as a
percentage of one core for real-time audio (cpu_s / audio_s * 100). Detection rows use the espeak-ng corpus of
tests/fixtures/speechgen.py (10 voices x 3 speeds, pitches varied, clean / white 20 dB / pink 10 dB SNR; 6
non-wake sentences incl. "Alexander", "a lexus", "election") at each engine's default threshold.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from avsd.audio.frames import FRAME_BYTES, SAMPLE_RATE
from avsd.errors import WakeWordError
from avsd.root import select_engine
from avsd.wake.base import WakeSettings
from tests.fixtures import speechgen

ENGINES = ("micro", "openwakeword", "porcupine")
IDLE_SECONDS = 60


def _engine(name: str):  # type: ignore[no-untyped-def]
    try:
        return select_engine(WakeSettings(engine=name))
    except WakeWordError:
        return None


def idle_cpu(name: str) -> float | None:
    engine = _engine(name)
    if engine is None:
        return None
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(IDLE_SECONDS * SAMPLE_RATE) * 30).astype("<i2").tobytes()
    start = time.process_time()
    for offset in range(0, len(noise), FRAME_BYTES):
        engine.process(noise[offset : offset + FRAME_BYTES], offset // 2 + 160)
    cpu = time.process_time() - start
    engine.close()
    return cpu / IDLE_SECONDS * 100


def detection(name: str, samples: list[speechgen.Sample]) -> dict[str, float] | None:
    engine = _engine(name)
    if engine is None:
        return None
    hits = misses = false = 0
    errors: list[float] = []
    for sample in samples:
        engine.reset()
        pcm = speechgen.read_wav(sample.path).tobytes()
        first = None
        for offset in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
            det = engine.process(pcm[offset : offset + FRAME_BYTES], (offset + FRAME_BYTES) // 2)
            if det is not None and first is None:
                first = det
        if sample.positive:
            hits += first is not None
            misses += first is None
            if first is not None:
                errors.append(abs(first.start_index - sample.utterance.alexa_start) / SAMPLE_RATE * 1000)
        else:
            false += first is not None
    engine.close()
    return {
        "rate": hits / max(1, hits + misses) * 100,
        "false": false,
        "negatives": sum(not s.positive for s in samples),
        "start_err_max_ms": max(errors, default=float("nan")),
        "start_err_median_ms": float(np.median(errors)) if errors else float("nan"),
    }


def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name in ENGINES:
        cpu = idle_cpu(name)
        if cpu is None:
            continue
        target = "<= 1" if name == WakeSettings().engine else "informational"
        rows.append(
            {
                "metric": f"engine_cpu_percent_{name}",  # the engine alone; bench_pipeline has the daemon
                "value": round(cpu, 3),
                "unit": "% of one core",
                "target": target,
            }
        )
    if not speechgen.have_tools():
        return rows
    with tempfile.TemporaryDirectory() as tmp:
        samples = speechgen.corpus(Path(tmp))
        for name in ENGINES:
            result = detection(name, samples)
            if result is None:
                continue
            rows.append(
                {
                    "metric": f"detection_rate_{name}",
                    "value": round(result["rate"], 1),
                    "unit": "%",
                    "target": ">= 90" if name == WakeSettings().engine else "informational",
                }
            )
            rows.append(
                {
                    "metric": f"false_triggers_{name}",
                    "value": result["false"],
                    "unit": f"of {result['negatives']} non-wake utterances",
                    "target": "0",
                }
            )
            rows.append(
                {
                    "metric": f"wake_start_error_max_ms_{name}",
                    "value": round(result["start_err_max_ms"], 1),
                    "unit": "ms",
                    "target": "<= 20",
                }
            )
            rows.append(
                {
                    "metric": f"wake_start_error_median_ms_{name}",
                    "value": round(result["start_err_median_ms"], 1),
                    "unit": "ms",
                    "target": "<= 20",
                }
            )
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
