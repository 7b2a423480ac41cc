"""Wake-word benchmark (issue 9): real people first, then a hard synthetic set, false wakes, CPU and latency.

Per engine (``micro``, ``openwakeword``, and the default ``cascade``, whose openWakeWord is gated by speech
energy), each model's score trace is recorded once over every set (the real scorers, fed 100 ms blocks as the
daemon feeds them while idle, thresholds out of reach so nothing fires); detections at any threshold pair are then
derived from the traces with the engine's own rule (a score above the model's threshold fires unless inside the
shared refractory period), which gives the trade-off curve without re-running the models.

- detection_real_<engine>: every real "Alexa" in /work/shared/audio/real/ padded with 1 s of silence;
  detection_real_augmented_<engine>: the same recordings through 12 room / microphone effect chains each;
- detection_hard_<engine>: 210 espeak-ng utterances (10 voices x 3 speeds x 7 effect chains: pitch +-3
  semitones or tempo, reverb or telephone band-pass, white / pink / babble noise at 0-20 dB SNR; "Alexa" alone
  and followed by a command), see tests/fixtures/hardset.py;
- false_wakes_per_hour_<engine>: over >= 30 min of non-wake speech (near misses in every voice and effect, plus
  real speech: Porcupine's recording without its "Alexa", pocketsphinx-testdata);
- wake_start_error_{median,p95}_ms_<engine>: start-of-word estimate (wakeWordIndices) against the exact start
  in the hard set;
- engine_cpu_percent_{silence,speech}_<engine>: the engine alone, CPU time / audio time;
- daemon_cpu_percent_{silence,speech}_<engine>: `avsd run` as a process listening to room noise / to
  non-wake speech at real-time pace, 12 s measured after a 7 s start (steady state: the cascade's openWakeWord
  warm-up is over);
- wake_to_first_audio_byte_p95_ms: bench_pipeline's dialog latency (10 dialogs), default engine.

Every positive is preceded by 3 s of its own room noise, so the cascade's gate is closed when the word starts.

Generated audio is cached in $AVSD_BENCH_CACHE (default /tmp/avsd-wake-cache). ``--quick`` runs a small sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from avsd.audio.frames import SAMPLE_RATE
from avsd.root import select_engine
from avsd.wake.base import WakeSettings
from avsd.wake.cascade import GatedScorer
from avsd.wake.scored import ScoredEngine, Scorer
from tests.fixtures import hardset, speechgen

ENGINES = ("micro", "openwakeword", "cascade")
AGREE_WINDOW = round(0.5 * SAMPLE_RATE)  # avsd.wake.scored._AGREE_WINDOW
LEAD_S = 3.0  # room before every positive (longer than the cascade's 2.5 s warm-up)
BLOCK = 1600 * 2  # 100 ms, as the daemon hands audio over while idle
REFRACTORY = round(WakeSettings().refractory_s * SAMPLE_RATE)
MICRO_SWEEP = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
OWW_SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
AGREE_SWEEP = (
    {"micro": 0.5, "openwakeword": 0.2},
    {"micro": 0.3, "openwakeword": 0.1},
    {"micro": 0.2, "openwakeword": 0.05},
    {"micro": 0.1, "openwakeword": 0.05},
)


class Recorder(Scorer):
    """Wraps a scorer and keeps every score it produces with the block's end index."""

    def __init__(self, inner: Scorer) -> None:
        self.inner = inner
        self.name = inner.name
        self.trace: list[tuple[int, float]] = []

    def score(self, frame: bytes, levels: Sequence[float], end_index: int) -> float | None:
        value = self.inner.score(frame, levels, end_index)
        if value is not None:
            self.trace.append((end_index, value))
        return value

    def reset(self) -> None:
        self.inner.reset()
        self.trace = []

    def close(self) -> None:
        self.inner.close()


Trace = dict[str, list[tuple[int, float]]]


def make_engine(name: str) -> tuple[ScoredEngine, list[Recorder]]:
    engine = select_engine(WakeSettings(engine=name, threshold=1.0, micro_threshold=1.0, openwakeword_threshold=1.0))
    assert isinstance(engine, ScoredEngine)
    recorders = []
    for model in engine.models:
        recorder = Recorder(model.scorer)
        model.scorer = recorder
        recorders.append(recorder)
    return engine, recorders


def room(seconds: float, seed: int = 11) -> np.ndarray:
    """A quiet room: the negative stream's noise floor."""
    return np.random.default_rng(seed).integers(-40, 40, round(seconds * SAMPLE_RATE)).astype(np.int16)


def run_clip(engine: ScoredEngine, recorders: list[Recorder], pcm: np.ndarray, *,
             measure_from_s: float = 0.0) -> tuple[Trace, float]:
    """Feed ``pcm`` from a fresh state; the score traces and the CPU seconds spent from ``measure_from_s``."""
    engine.reset()
    data = pcm.astype("<i2").tobytes()
    skip = round(measure_from_s * SAMPLE_RATE) * 2
    started = time.process_time()
    for offset in range(0, len(data) - BLOCK + 1, BLOCK):
        if offset == skip:
            started = time.process_time()
        engine.process(data[offset : offset + BLOCK], (offset + BLOCK) // 2)
    cpu = time.process_time() - started
    return {r.name: list(r.trace) for r in recorders}, cpu


@dataclass(frozen=True)
class Rule:
    """Per-model thresholds, and the agreement thresholds when the engine fuses its models."""

    normal: dict[str, float]
    agree: dict[str, float] | None = None


def default_rule(name: str) -> Rule:
    """The thresholds the engine really uses with the default settings."""
    engine = select_engine(WakeSettings(engine=name))
    assert isinstance(engine, ScoredEngine)
    normal = {m.scorer.name: m.thresholds.normal for m in engine.models}
    agrees = {m.scorer.name: m.thresholds.agree for m in engine.models}
    engine.close()
    if len(agrees) < 2 or any(a is None for a in agrees.values()):
        return Rule(normal)
    return Rule(normal, {k: float(v) for k, v in agrees.items() if v is not None})


def detections(trace: Trace, rule: Rule) -> list[tuple[int, str, float]]:
    """ScoredEngine's rule over recorded traces, block by block: the first model above its threshold fires, else
    all models above their agreement thresholds within AGREE_WINDOW; one shared refractory period."""
    order = list(trace)
    blocks: dict[int, list[tuple[int, str, float]]] = {}
    for name, points in trace.items():
        for idx, score in points:
            blocks.setdefault(idx, []).append((order.index(name), name, score))
    fired: list[tuple[int, str, float]] = []
    quiet_until = -1
    agreed_at = dict.fromkeys(order, -AGREE_WINDOW - 1)
    agreed_score = dict.fromkeys(order, 0.0)
    for idx in sorted(blocks):
        hit: tuple[str, float] | None = None
        for _, name, score in sorted(blocks[idx]):
            if rule.agree is not None and score > rule.agree[name]:
                agreed_at[name], agreed_score[name] = idx, score
            if hit is None and score > rule.normal[name]:
                hit = (name, score)
        if hit is None and rule.agree is not None and all(idx - agreed_at[n] <= AGREE_WINDOW for n in order):
            hit = ("+".join(order), min(agreed_score.values()))
        if hit is not None and idx >= quiet_until:
            fired.append((idx, *hit))
            quiet_until = idx + REFRACTORY
    return fired


def pct(hits: int, total: int) -> float:
    return round(hits / max(1, total) * 100, 1)


def evaluate(engine_name: str, pcm_sets: dict[str, list[tuple[hardset.Positive | None, np.ndarray]]],
             negatives: np.ndarray, earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """Traces over every set; the negative stream's rows are taken from ``earlier`` when given (positives only)."""
    engine, recorders = make_engine(engine_name)
    result: dict[str, Any] = {"traces": {}, "starts": {}}
    for set_name, items in pcm_sets.items():
        traces = []
        for positive, clip in items:
            # The clip's own room (its first 0.75 s: silence plus the set's noise, before any word) for LEAD_S
            # first, so the cascade's gate is closed and settled when the word comes, as in use: after a reset
            # openWakeWord runs ungated for its warm-up, which would hide what the gate does.
            pcm = np.concatenate([np.resize(clip[:12000], round(LEAD_S * SAMPLE_RATE)), clip])
            trace, _ = run_clip(engine, recorders, pcm)
            traces.append(trace)
            if positive is not None and positive.alexa_start >= 0:
                fired = detections(trace, default_rule(engine_name))
                if fired:
                    # the engine's own estimate at its own detection point (the shared onset tracker)
                    est = engine.estimate_start(fired[0][0]) - round(LEAD_S * SAMPLE_RATE)
                    result["starts"].setdefault(set_name, []).append((est - positive.alexa_start) / SAMPLE_RATE * 1e3)
        result["traces"][set_name] = traces
    if earlier is not None:
        keep = ("engine_cpu_silence", "engine_cpu_speech", "negative_trace", "gate_fed_fraction")
        engine.close()
        return {**result, **{k: earlier[k] for k in keep}}
    silence = np.random.default_rng(1).integers(-60, 60, 65 * SAMPLE_RATE).astype(np.int16)
    _, cpu = run_clip(engine, recorders, silence, measure_from_s=5.0)  # after the start-up warm-up
    result["engine_cpu_silence"] = cpu / 60 * 100
    trace, cpu = run_clip(engine, recorders, negatives)
    result["engine_cpu_speech"] = cpu / (len(negatives) / SAMPLE_RATE) * 100
    result["negative_trace"] = trace
    gated = [m.scorer.inner for m in engine.models if isinstance(m.scorer, Recorder)]
    result["gate_fed_fraction"] = next(
        (g.fed_samples / len(negatives) for g in gated if isinstance(g, GatedScorer)), None
    )
    engine.close()
    return result


def rates(result: dict[str, Any], thresholds: Rule, negative_hours: float) -> dict[str, float]:
    out = {}
    for set_name, traces in result["traces"].items():
        out[set_name] = pct(sum(bool(detections(t, thresholds)) for t in traces), len(traces))
    out["false_wakes_per_hour"] = round(len(detections(result["negative_trace"], thresholds)) / negative_hours, 2)
    return out


def which_fired(result: dict[str, Any], thresholds: Rule) -> dict[str, int]:
    counts: dict[str, int] = {}
    for traces in result["traces"].values():
        for trace in traces:
            fired = detections(trace, thresholds)
            if fired:
                counts[fired[0][1]] = counts.get(fired[0][1], 0) + 1
    return counts


def process_cpu(config: Path, wav: Path, warm_s: float = 7.0, measure_s: float = 12.0) -> float:
    """CPU % of one core of `avsd run` listening to ``wav`` at real-time pace, measured after ``warm_s`` (start-up,
    and the cascade's one-off openWakeWord warm-up), as bench_pipeline.idle_process but steady state."""
    process = subprocess.Popen([sys.executable, "-m", "avsd", "run", "--config", str(config), "--input", str(wav)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ps = psutil.Process(process.pid)
        time.sleep(warm_s)
        before, started = ps.cpu_times(), time.monotonic()
        time.sleep(measure_s)
        after, ended = ps.cpu_times(), time.monotonic()
        if process.poll() is not None:
            raise RuntimeError(f"avsd run exited early with {process.returncode}")
    finally:
        process.terminate()
        process.wait(10)
    return ((after.user + after.system) - (before.user + before.system)) / (ended - started) * 100


def daemon_cpu(engine_names: Iterable[str], speech: np.ndarray) -> list[dict[str, Any]]:
    from _common import EmulatorThread
    from bench_pipeline import daemon_config, dialog_latencies, noise, write_wav

    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        emulator_thread = EmulatorThread(tmp / "certs")
        with emulator_thread:
            quiet = write_wav(tmp / "room.wav", noise(25, 1))  # bench_pipeline's room noise
            talk = write_wav(tmp / "talk.wav", speech[: 25 * SAMPLE_RATE])  # non-wake speech, with its pauses
            for name in engine_names:
                for label, wav, target in (("silence", quiet, "<= 0.8"), ("speech", talk, "<= 10")):
                    cpu = process_cpu(daemon_config(tmp, emulator_thread, name), wav)
                    rows.append({"metric": f"daemon_cpu_percent_{label}_{name}", "value": round(cpu, 2),
                                 "unit": "% of one core", "target": target if name == "cascade" else "info"})
            wake, _ = asyncio.run(dialog_latencies(emulator_thread, tmp, trials=10))
            rows.append({"metric": "wake_to_first_audio_byte_p95_ms", "value": round(float(np.percentile(wake, 95)), 2),
                         "unit": "ms", "target": "<= 20", "samples": len(wake), "engine": WakeSettings().engine})
    return rows


def run(quick: bool = False, with_daemon: bool = True, redo_positives: bool = False) -> list[dict[str, Any]]:
    cache = hardset.cache_dir()
    real = [(None, pcm) for pcm in hardset.real_clips().values()]
    sets: dict[str, list[tuple[hardset.Positive | None, np.ndarray]]] = {"real": list(real)}
    sets["real_augmented"] = [(p, speechgen.read_wav(p.path)) for p in hardset.real_augmented(cache)]
    sets["hard"] = [(p, speechgen.read_wav(p.path)) for p in hardset.hard_set(cache, step=10 if quick else 1)]
    negatives = hardset.negative_stream(cache, minutes=3.0 if quick else 30.0)
    hours = len(negatives) / SAMPLE_RATE / 3600
    rows: list[dict[str, Any]] = [{"metric": "corpus", "real": len(sets["real"]),
                                   "real_augmented": len(sets["real_augmented"]), "hard": len(sets["hard"]),
                                   "negative_minutes": round(hours * 60, 1)}]
    results = {}
    for name in ENGINES:  # cached: a re-run after a crash or for the daemon rows does not redo the models
        saved = cache / f"results-{name}-{'quick' if quick else 'full'}.pickle"
        if saved.exists() and redo_positives:
            results[name] = evaluate(name, sets, negatives, earlier=pickle.loads(saved.read_bytes()))
            saved.write_bytes(pickle.dumps(results[name]))
        elif saved.exists():
            results[name] = pickle.loads(saved.read_bytes())
        else:
            results[name] = evaluate(name, sets, negatives)
            saved.write_bytes(pickle.dumps(results[name]))
        print(f"bench_wake: {name} evaluated", file=sys.stderr, flush=True)
    default = WakeSettings().engine
    for name, result in results.items():
        thresholds = default_rule(name)
        r = rates(result, thresholds, hours)
        for set_name, target in (("real", "100"), ("real_augmented", "info"), ("hard", ">= 95")):
            rows.append({"metric": f"detection_{set_name}_{name}", "value": r[set_name], "unit": "%",
                         "target": target if name == default else "info"})
        rows.append({"metric": f"false_wakes_per_hour_{name}", "value": r["false_wakes_per_hour"], "unit": "/h",
                     "target": "<= 0.5" if name == default else "info"})
        errors = np.abs(np.array(result["starts"].get("hard", [np.nan])))
        rows.append({"metric": f"wake_start_error_median_ms_{name}", "value": round(float(np.median(errors)), 1),
                     "unit": "ms", "p95": round(float(np.percentile(errors, 95)), 1), "target": "info"})
        rows.append({"metric": f"engine_cpu_percent_silence_{name}", "value": round(result["engine_cpu_silence"], 3),
                     "unit": "% of one core", "target": "info"})
        rows.append({"metric": f"engine_cpu_percent_speech_{name}", "value": round(result["engine_cpu_speech"], 2),
                     "unit": "% of one core", "target": "info", "gate_open_fraction": result["gate_fed_fraction"]})
        rows.append({"metric": f"first_engine_to_fire_{name}", "value": which_fired(result, thresholds),
                     "thresholds": thresholds.normal, "agree": thresholds.agree})
    # Trade-off curves: single engines over their threshold, the cascade over the grid.
    for name, sweep_key, sweep in (("micro", "micro", MICRO_SWEEP), ("openwakeword", "openwakeword", OWW_SWEEP)):
        curve = [{"threshold": t, **rates(results[name], Rule({sweep_key: t}), hours)} for t in sweep]
        rows.append({"metric": f"tradeoff_{name}", "value": curve})
    for agree in (None, *AGREE_SWEEP):
        grid = [
            {"micro": m, "openwakeword": o,
             **rates(results["cascade"], Rule({"micro": m, "openwakeword": o}, agree), hours)}
            for m in MICRO_SWEEP for o in OWW_SWEEP
        ]
        label = "either" if agree is None else f"agree_{agree['micro']}_{agree['openwakeword']}"
        rows.append({"metric": f"tradeoff_cascade_{label}", "value": grid})
    if with_daemon:
        rows += daemon_cpu(ENGINES, negatives)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a sample of each set (for a smoke run)")
    parser.add_argument("--no-daemon", action="store_true", help="skip the whole-daemon CPU and latency rows")
    parser.add_argument("--redo-positives", action="store_true",
                        help="re-run the positive sets, keep the cached non-wake stream results")
    args = parser.parse_args()
    for row in run(quick=args.quick, with_daemon=not args.no_daemon, redo_positives=args.redo_positives):
        print(json.dumps(row))
