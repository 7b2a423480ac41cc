"""The offline assistant: intent accuracy, rejection, real recordings, latency, CPU per turn, RSS.

- accuracy: >= 300 espeak-ng utterances (every intent, varied phrasings) x voices x speeds x sox effects (pitch,
  reverb, telephone band) x noise at 10-20 dB SNR, decoded by the same grammar model the server uses (wake word
  already stripped, as the server does with wakeWordIndices). Correct = same intent AND same slot values as the
  text parsed directly.
- rejection: sentences that are not commands must end in the fallback (or nothing), never in a command.
- real: Debian's pocketsphinx-testdata ``goforward.raw`` (a real person saying "go forward ten meters"), decoded
  with a grammar made from its own goforward.gram. (No real recordings of *these* commands with a usable licence
  were found; this checks the decoder settings on real human speech.)
- latency: the real device (tests.harness) against the local server + assistant, speech fed in real time:
  the server's end-of-speech decision (StopCapture) -> the Speak directive parsed at the device.
- CPU per turn (decoder thread + espeak-ng + lame), RSS of a process running the daemon with the assistant.

Usage: ``python bench/run.py assistant`` (or ``python bench/bench_assistant.py``). ``AVSD_BENCH_QUICK=1``: fewer
utterances.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avsd.assistant.brain import grammar_recognizer  # noqa: E402
from avsd.assistant.grammar import Language  # noqa: E402
from avsd.speech.stt import PocketsphinxModel  # noqa: E402
from bench._common import p95  # noqa: E402
from tests.fixtures import speechgen  # noqa: E402

# Every intent, several phrasings each (what people say, not only the canonical form).
COMMANDS = [
    "what time is it", "what's the time", "tell me the time",
    "what's the date today", "what day is it",
    "set a timer for five minutes", "set a timer for ten seconds", "start a timer for twenty minutes",
    "set a pasta timer for twelve minutes", "set a timer for one hour", "set a timer for thirty seconds",
    "set a timer",
    "cancel the timer", "cancel the pasta timer", "stop the egg timer",
    "how much time is left", "how much time is left on the pasta timer", "what timers do i have",
    "wake me up at seven thirty", "set an alarm for six a m tomorrow", "set an alarm for eight fifteen",
    "wake me up at nine p m", "cancel my alarm",
    "turn the volume up", "louder", "volume down", "set the volume to four", "set the volume to seven",
    "mute", "unmute",
    "stop", "never mind", "cancel",
    "play some music", "next song", "previous track", "pause", "resume",
    "what can you do", "help",
]
NEGATIVES = [
    "tell me a joke", "what is the weather like tomorrow", "call my mom", "turn on the kitchen lights",
    "who is the president of france", "add milk to my shopping list", "order a pizza", "sing me a song",
]
VOICES = ["en-us", "en-us+f3", "en-us+m3", "en-us+m7", "en-us+f2", "en"]
SPEEDS = [135, 160, 185]
EFFECTS: list[tuple[str, list[str]]] = [
    ("clean", []),
    ("pitch", ["pitch", "-200"]),
    ("reverb", ["reverb", "40"]),
    ("phone", ["sinc", "300-3400"]),
]
SNRS = [10.0, 15.0, 20.0]


def corpus(cache: Path, n: int) -> list[tuple[str, str, int, str, float, Path]]:
    rng = random.Random(11)
    combos = list(itertools.product(VOICES, SPEEDS, EFFECTS, SNRS))
    rng.shuffle(combos)
    items = []
    for i in range(n):
        text = COMMANDS[i % len(COMMANDS)]
        voice, speed, (effect, args), snr = combos[i % len(combos)]
        items.append((text, voice, speed, effect, snr, cache / f"{i:04d}.wav"))
    cache.mkdir(parents=True, exist_ok=True)
    for text, voice, speed, effect, snr, path in items:
        if path.exists():
            continue
        pcm = np.concatenate([speechgen.silence(0.3), speechgen.synth(text, voice, speed), speechgen.silence(0.6)])
        args = dict(EFFECTS)[effect]
        if args:
            pcm = speechgen.sox_effect(pcm, args)
        pcm = speechgen.add_noise(pcm, snr, seed=hash((text, voice, speed)) % 2**32)
        speechgen.write_wav(path, pcm)
    return items


def accuracy(model: PocketsphinxModel, lang: Language, items: list[tuple[str, str, int, str, float, Path]]) -> dict:
    ok = intent_ok = 0
    misses: list[str] = []
    by_effect: dict[str, list[int]] = {}
    cpu: list[float] = []
    for text, voice, speed, effect, snr, path in items:
        pcm = speechgen.read_wav(path).astype("<i2").tobytes()
        tr = model.transcribe(pcm)
        cpu.append(tr.decode_s)
        got, want = lang.parse(tr.text), lang.parse(text)
        good = (got.name, dict(got.slots)) == (want.name, dict(want.slots))
        ok += good
        intent_ok += got.name == want.name
        by_effect.setdefault(effect, []).append(int(good))
        if not good and len(misses) < 40:
            misses.append(f"{text!r} [{voice} {speed} {effect} {snr:g}dB] -> {tr.text!r}")
    return {
        "n": len(items),
        "accuracy": ok / len(items),
        "intent_only": intent_ok / len(items),
        "by_effect": {k: round(sum(v) / len(v), 3) for k, v in by_effect.items()},
        "misses": misses,
        "decode_cpu_ms_median": float(np.median(cpu)) * 1000,
    }


def rejection(model: PocketsphinxModel, lang: Language) -> dict:
    rejected = 0
    heard = []
    for i, text in enumerate(NEGATIVES):
        said = speechgen.synth(text, VOICES[i % 3], 160)
        pcm = np.concatenate([speechgen.silence(0.3), said, speechgen.silence(0.6)])
        pcm = speechgen.add_noise(pcm, 20, seed=i)
        tr = model.transcribe(pcm.astype("<i2").tobytes())
        name = lang.parse(tr.text).name if tr.text else "nothing"
        rejected += name in ("Fallback", "nothing")
        heard.append(f"{text!r} -> {tr.text!r} ({name})")
    rng = np.random.default_rng(5)
    noise_only = 0
    for kind in ("silence", "white", "pink"):
        n = 32000
        x = np.zeros(n) if kind == "silence" else rng.standard_normal(n) * 1500
        if kind == "pink":
            x = np.convolve(x, 0.97 ** np.arange(64), mode="same") / 4
        tr = model.transcribe(np.clip(x, -32768, 32767).astype("<i2").tobytes())
        name = lang.parse(tr.text).name if tr.text else "nothing"
        noise_only += name in ("Fallback", "nothing")
        heard.append(f"{kind} -> {tr.text!r} ({name})")
    return {"negatives_rejected": rejected / len(NEGATIVES), "noise_rejected": noise_only / 3, "heard": heard}


def real_recordings() -> dict | None:
    data = Path("/usr/share/pocketsphinx/test/data")
    raw = data / "goforward.raw"
    if not raw.exists():
        return None
    from pocketsphinx import Decoder

    from avsd.speech.stt import model_paths

    hmm, dic = model_paths()
    decoder = Decoder(hmm=str(hmm), dict=str(dic), lm=None, bestpath=False, loglevel="FATAL")
    decoder.add_jsgf_string("g", (data / "goforward.gram").read_text())
    decoder.activate_search("g")
    from avsd.speech.stt import _dither

    pcm = raw.read_bytes()
    decoder.start_utt()
    decoder.process_raw(_dither(pcm, np.random.default_rng(0)), False, True)
    decoder.end_utt()
    hyp = decoder.hyp()
    text = hyp.hypstr if hyp is not None else ""
    said = "go forward ten meters"
    return {"file": str(raw), "said": said, "heard": text, "correct": text == said}


async def latency(turns: int) -> dict:
    from avsd.assistant.brain import AssistantBrain
    from avsd.emulator.server import Emulator
    from tests.harness import running_device, with_noise

    brain = AssistantBrain()
    lat: list[float] = []
    commands = ["what time is it", "set the volume to four", "what can you do", "what's the date today"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        async with Emulator(cert_dir=tmp_path / "certs", brain=brain) as emu, running_device(
            tmp_path, emulator=emu
        ) as dev:
            arrivals: list[tuple[float, str]] = []
            dev.daemon.client.directive_observers.add(
                lambda d: arrivals.append((time.monotonic(), d.header.name)), name="bench arrivals"
            )
            t_cpu = time.process_time()
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            for i in range(turns):
                pcm, _ = speechgen.build("l", command=commands[i % len(commands)], voice="en-us", speed=150)
                done = len(brain.turns)
                await dev.source.feed(with_noise(pcm.astype("<i2").tobytes(), level=60), realtime=True)
                await dev.source.feed_silence(1.0, realtime=True)
                await dev.settle(30)
                eos = brain.turns[-1].end_of_speech_at if len(brain.turns) > done else None
                if eos is None:  # the upload ended before the server's endpointer fired
                    continue
                answer = [t for t, name in arrivals if t >= eos and name in ("Speak", "SetVolume")]
                if answer:
                    lat.append((answer[0] - eos) * 1000)
            cpu_s = time.process_time() - t_cpu
            ch = resource.getrusage(resource.RUSAGE_CHILDREN)
            child_s = (ch.ru_utime + ch.ru_stime) - (children.ru_utime + children.ru_stime)
    return {"latency_ms": lat, "cpu_per_turn_s": cpu_s / turns, "espeak_cpu_per_turn_s": child_s / turns,
            "decode_cpu_per_turn_s": float(np.mean([t.decode_cpu_s for t in brain.turns]))}


SERVER_SCRIPT = """
import asyncio, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from avsd.emulator.server import Emulator
from avsd.assistant.brain import AssistantBrain
async def main():
    t0 = time.monotonic()
    async with Emulator(cert_dir=Path({tmp!r}) / 'c', brain=AssistantBrain()) as e:
        print('ready', time.monotonic() - t0, e.base_url, e.refresh_token, e.ca_file, flush=True)
        await asyncio.sleep(120)
asyncio.run(main())
"""


def _rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024


def _avsd_run(config: Path, wav: Path) -> tuple[float, float]:
    """(RSS MiB 5 s after READY, seconds to READY) of `avsd run` as a real process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "avsd", "run", "--config", str(config), "--input", str(wav), "--hardware", "none"],
        env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    ready = float("nan")
    for line in proc.stderr:
        if "avsd running" in line:
            ready = time.monotonic() - t0
            break
    time.sleep(5)
    rss = _rss_mib(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    return rss, ready


def rss_choice() -> dict[str, float]:
    """The assistant in the daemon's process vs a second process (a second systemd unit)."""
    from avsd.avs.credentials import Credentials, save_credentials

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wav = tmp / "silence.wav"
        speechgen.write_wav(wav, speechgen.silence(40.0))
        one = tmp / "one.toml"
        one.write_text(f'[daemon]\nstate_dir = "{tmp / "s1"}"\n[avs]\nbackend = "assistant"\n'
                       f'[playback]\nbackend = "wav"\nwav_dir = "{tmp / "p1"}"\n')
        in_rss, in_ready = _avsd_run(one, wav)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT.format(root=str(ROOT), tmp=tmp_name)],
                                  env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            _, ready_s, url, token, ca = server.stdout.readline().split()
            time.sleep(3)
            server_rss = _rss_mib(server.pid)
            save_credentials(tmp / "s2" / "credentials.json", Credentials("avsd-emulator", token))
            two = tmp / "two.toml"
            two.write_text(f'[daemon]\nstate_dir = "{tmp / "s2"}"\n[avs]\nendpoint = "{url}"\nca_file = "{ca}"\n'
                           f'[playback]\nbackend = "wav"\nwav_dir = "{tmp / "p2"}"\n')
            daemon_rss, daemon_ready = _avsd_run(two, wav)
        finally:
            server.kill()
            server.wait()
    return {"in_process_rss": in_rss, "in_process_ready": in_ready, "server_rss": server_rss,
            "server_ready": float(ready_s), "daemon_rss": daemon_rss, "daemon_ready": daemon_ready}


def run() -> list[dict[str, object]]:
    quick = os.environ.get("AVSD_BENCH_QUICK") == "1"
    lang = Language.load()
    model = grammar_recognizer(lang)
    cache = Path(tempfile.gettempdir()) / "avsd-bench-assistant"
    items = corpus(cache, 60 if quick else 320)
    acc = accuracy(model, lang, items)
    rej = rejection(model, lang)
    real = real_recordings()
    lat = asyncio.run(latency(4 if quick else 12))
    rss = rss_choice()
    print(json.dumps({"misses": acc.pop("misses"), "heard": rej.pop("heard"), "real": real}, indent=1),
          file=sys.stderr)
    rows: list[dict[str, object]] = [
        {"metric": "assistant_intent_accuracy", "value": round(acc["accuracy"], 4), "unit": "fraction",
         "target": ">= 0.95", "n": acc["n"], "by_effect": acc["by_effect"]},
        {"metric": "assistant_intent_only_accuracy", "value": round(acc["intent_only"], 4), "unit": "fraction"},
        {"metric": "assistant_non_commands_rejected", "value": rej["negatives_rejected"], "unit": "fraction"},
        {"metric": "assistant_noise_silence_rejected", "value": rej["noise_rejected"], "unit": "fraction"},
        {"metric": "assistant_decode_cpu_ms_median", "value": round(acc["decode_cpu_ms_median"], 1), "unit": "ms"},
        {"metric": "assistant_end_of_speech_to_speak_p95_ms", "value": round(p95(lat["latency_ms"]), 1),
         "unit": "ms", "target": "<= 300", "n": len(lat["latency_ms"])},
        {"metric": "assistant_server_cpu_per_turn_ms", "value": round(lat["cpu_per_turn_s"] * 1000, 1),
         "unit": "ms", "espeak_lame_children_ms": round(lat["espeak_cpu_per_turn_s"] * 1000, 1),
         "decoder_ms": round(lat["decode_cpu_per_turn_s"] * 1000, 1)},
        {"metric": "assistant_in_process_rss_mb", "value": round(rss["in_process_rss"], 1), "unit": "MiB",
         "target": "<= 150", "what": "avsd run with avs.backend = assistant"},
        {"metric": "assistant_in_process_start_s", "value": round(rss["in_process_ready"], 2), "unit": "s"},
        {"metric": "assistant_two_units_rss_mb", "value": round(rss["server_rss"] + rss["daemon_rss"], 1),
         "unit": "MiB", "server": round(rss["server_rss"], 1), "daemon": round(rss["daemon_rss"], 1),
         "server_start_s": round(rss["server_ready"], 2), "daemon_start_s": round(rss["daemon_ready"], 2)},
    ]
    if real is not None:
        rows.append({"metric": "assistant_real_recordings_correct", "value": int(real["correct"]), "unit": "of 1",
                     "source": "Debian pocketsphinx-testdata goforward.raw"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row), flush=True)
