"""Virtual device: what avsd adds to a ``/process`` call, concurrency, and the transcript's word error rate.

- ``vdevice_added_s_p95``: TTS of the utterance + speech-to-text of the reply (+ the HTTP hop), i.e. the call's
  time minus the device interaction (the Recognize and the back-end's answer), p95 over the calls, and the same
  as a fraction of the reply's audio length (target <= 0.5);
- ``vdevice_concurrent_wall_ratio``: 10 concurrent /process calls on 10 tokens vs one call (target <= 2), replies
  transcribed in one STT worker process per core; with the CPU seconds those calls cost (avsd and the local
  server, which runs in the same process here) and the floor that puts on the ratio on this machine's cores:
  ``cpu per call x 10 / cores / one call's wall``;
- ``vdevice_throughput_rps_1_worker`` / ``_2_workers``: ``avsd vdevice --workers N`` in its own process (the local
  server in each worker), a fixed batch of /process calls, 10 in flight on 10 tokens: calls per second; and the
  same with ``skip_stt=true`` (``..._skip_stt``), where the server processes' own work (HTTP, TLS, the sessions,
  the local server) is all there is, since with speech-to-text the STT worker pool already spreads the dominant
  cost over every core from one server process;
- ``vdevice_transcript_wer``: word error rate of ``transcript`` against the text the back-end spoke, with that
  text's words given as ``phrases`` as a test suite would (bst sends the expected prompt) — and without phrases.

Back-end: the local AVS server answering with a list of assistant-style sentences (espeak-ng MP3 at its
default 165 wpm), over real HTTP/2 + TLS; avsd's speech: espeak-ng in, pocketsphinx free text out.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from avsd.avs.client import ConnectionSettings
from avsd.avs.credentials import Credentials
from avsd.emulator.server import Emulator
from avsd.root import build_headless_session
from avsd.session import HeadlessSession
from avsd.speech.stt_processes import SttProcessPool
from avsd.vdevice.service import bind, default_speech, local_url, serving, virtual_device_app
from avsd.vdevice.tokens import TokenBook

REPLIES = [
    "It is ten thirty in the morning.",
    "Welcome to the quiz. How many players are there?",
    "Your timer is set for five minutes.",
    "I set an alarm for seven thirty tomorrow morning.",
    "The volume is now five.",
    "Sorry, I did not understand that.",
    "Playing music from your library.",
    "You have two timers running.",
]
TOKENS = [f"bench-token-{i:02d}-0123456789" for i in range(10)]
CORES = os.cpu_count() or 1
ROOT = Path(__file__).resolve().parents[1]
THROUGHPUT_CALLS = 40
THROUGHPUT_CALLS_SKIP_STT = 400  # ~100 calls/s: enough to last seconds


def cpu_seconds(pids: list[int]) -> float:
    """CPU (user + system) of this process, its reaped children (espeak-ng) and the running ``pids``."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 2 else values[0]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    ref = [w.strip(".,?!:;").lower() for w in reference.split()]
    hyp = [w.strip(".,?!:;").lower() for w in hypothesis.split()]
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


async def one_backend(reply: str, state: Path, calls: int, phrases: bool) -> dict[str, Any]:
    async with Emulator(cert_dir=state / "certs", reply_text=reply) as emulator:
        async def open_session(identity: str) -> HeadlessSession:
            settings = ConnectionSettings(endpoint=emulator.base_url, ca_file=str(emulator.ca_file))
            return build_headless_session(settings, credentials=Credentials(identity, emulator.refresh_token),
                                 token_url=emulator.base_url + "/auth/o2/token")

        tokens_file = state / "tokens"
        tokens_file.write_text("\n".join(TOKENS) + "\n")
        sock = bind("127.0.0.1", 0)
        url = local_url(sock)
        pool = SttProcessPool(CORES)
        async with virtual_device_app(open_session, default_speech(stt_pool=pool), TokenBook.from_file(tokens_file),
                                      state, url) as (app, _p), serving(app, sock), aiohttp.ClientSession() as http:
            async def process(token: str) -> tuple[float, dict[str, Any]]:
                params = [("message", "hello there"), ("user_id", token), ("debug", "true")]
                if phrases:
                    params.append(("phrases", reply.rstrip(".?!")))
                started = time.perf_counter()
                async with http.get(url + "/process", params=params) as answer:
                    result = await answer.json()
                    assert answer.status == 200, result
                return time.perf_counter() - started, result

            for token in TOKENS if phrases else TOKENS[:1]:  # each token is its own device: connect them first
                await process(token)
            singles = [await process(TOKENS[0]) for _ in range(calls)]
            concurrent_wall = concurrent_cpu = 0.0
            if phrases:  # the concurrency figure once per reply is enough
                stt_pids = await pool.worker_pids()
                cpu_before = cpu_seconds(stt_pids)
                started = time.perf_counter()
                await asyncio.gather(*(process(t) for t in TOKENS))
                concurrent_wall = time.perf_counter() - started
                concurrent_cpu = cpu_seconds(stt_pids) - cpu_before
            async with http.get(singles[0][1]["transcriptAudioURL"]) as answer:
                mp3 = await answer.read()
    from avsd.speech.convert import decode_mp3

    reply_s = decode_mp3(mp3, 16000).seconds
    added = [wall - r["debug"]["deviceInteractionDuration"] for wall, r in singles]
    errors = [word_errors(reply, r["transcript"]) for _, r in singles]
    return {"added": added, "reply_s": reply_s, "single_wall": [w for w, _ in singles],
            "concurrent_wall": concurrent_wall, "concurrent_cpu": concurrent_cpu, "errors": errors}


async def measure() -> list[dict[str, object]]:
    added_ratio: list[float] = []
    added: list[float] = []
    concurrency: list[float] = []
    floors: list[float] = []
    cpu_per_call: list[float] = []
    wer = {True: [0, 0], False: [0, 0]}
    with tempfile.TemporaryDirectory() as tmp:
        for index, reply in enumerate(REPLIES):
            for phrases in (True, False):
                state = Path(tmp) / f"{index}-{phrases}"
                state.mkdir()
                out = await one_backend(reply, state, calls=3, phrases=phrases)
                wer[phrases][0] += sum(e for e, _ in out["errors"])
                wer[phrases][1] += sum(n for _, n in out["errors"])
                if phrases:
                    added += out["added"]
                    added_ratio += [a / out["reply_s"] for a in out["added"]]
                    one_call = statistics.median(out["single_wall"])
                    concurrency.append(out["concurrent_wall"] / one_call)
                    cpu_per_call.append(out["concurrent_cpu"] / len(TOKENS))
                    floors.append(out["concurrent_cpu"] / CORES / one_call)
    worst = concurrency.index(max(concurrency))
    rps = {workers: await throughput(workers) for workers in (1, 2)}
    rps_skip = {workers: await throughput(workers, skip_stt=True) for workers in (1, 2)}
    return [
        {"metric": "vdevice_added_s_p95", "value": round(p95(added), 3), "unit": "s"},
        {"metric": "vdevice_added_over_reply_length_p95", "value": round(p95(added_ratio), 3), "unit": "ratio",
         "target": "<= 0.5"},
        {"metric": "vdevice_concurrent_wall_ratio", "value": round(max(concurrency), 2), "unit": "x one call",
         "target": "<= 2", "note": f"10 concurrent /process on 10 tokens, worst of the replies; {CORES} STT workers"},
        {"metric": "vdevice_concurrent_cpu_s_per_call", "value": round(cpu_per_call[worst], 3), "unit": "s",
         "note": "avsd + the in-process local server, during the 10 concurrent calls of the worst reply"},
        {"metric": "vdevice_concurrent_wall_ratio_floor", "value": round(floors[worst], 2), "unit": "x one call",
         "note": f"cpu per call x 10 / {CORES} cores / one call's wall: the best any scheduling could do here"},
        {"metric": "vdevice_throughput_rps_1_worker", "value": round(rps[1], 2), "unit": "calls/s",
         "note": f"{THROUGHPUT_CALLS} /process calls, 10 in flight, avsd vdevice --workers 1"},
        {"metric": "vdevice_throughput_rps_2_workers", "value": round(rps[2], 2), "unit": "calls/s",
         "note": f"the same with --workers 2 ({rps[2] / rps[1]:.2f} x)"},
        {"metric": "vdevice_throughput_rps_1_worker_skip_stt", "value": round(rps_skip[1], 2), "unit": "calls/s",
         "note": f"{THROUGHPUT_CALLS_SKIP_STT} /process?skip_stt=true calls, 10 in flight, --workers 1"},
        {"metric": "vdevice_throughput_rps_2_workers_skip_stt", "value": round(rps_skip[2], 2), "unit": "calls/s",
         "note": f"the same with --workers 2 ({rps_skip[2] / rps_skip[1]:.2f} x)"},
        {"metric": "vdevice_transcript_wer_with_phrases", "value": round(wer[True][0] / wer[True][1], 3),
         "unit": "ratio", "target": "<= 0.10 (aim)"},
        {"metric": "vdevice_transcript_wer_no_phrases", "value": round(wer[False][0] / wer[False][1], 3),
         "unit": "ratio"},
    ]


async def throughput(workers: int, *, skip_stt: bool = False) -> float:
    """``avsd vdevice --workers N`` as a user starts it; calls per second over a fixed batch, 10 in flight."""
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "scenario.toml"
        scenario.write_text(f"reply_text = {json.dumps(REPLIES[1])}\n")
        tokens = Path(tmp) / "tokens"
        tokens.write_text("\n".join(TOKENS) + "\n")
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "avsd", "vdevice", "--backend", "emulator", "--scenario", str(scenario),
            "--port", "0", "--state-dir", str(Path(tmp) / "state"), "--tokens", str(tokens),
            "--workers", str(workers), cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            assert server.stdout is not None
            url = (await asyncio.wait_for(server.stdout.readline(), 60)).decode().split()[2]
            # a new connection per call, so the kernel spreads the calls over the workers
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
                async def call(token: str) -> None:
                    params = {"message": "hello there", "user_id": token, "skip_stt": str(skip_stt).lower()}
                    async with http.get(url + "/process", params=params) as answer:
                        assert answer.status == 200, await answer.text()

                async def batch(calls: int) -> None:
                    queue = [TOKENS[i % len(TOKENS)] for i in range(calls)]

                    async def lane(index: int) -> None:
                        for token in queue[index :: len(TOKENS)]:
                            await call(token)

                    await asyncio.gather(*(lane(i) for i in range(len(TOKENS))))

                await batch(2 * len(TOKENS) * workers)  # every token connected on every worker, STT workers loaded
                calls = THROUGHPUT_CALLS_SKIP_STT if skip_stt else THROUGHPUT_CALLS
                started = time.perf_counter()
                await batch(calls)
                return calls / (time.perf_counter() - started)
        finally:
            server.terminate()
            await server.wait()


def run() -> list[dict[str, object]]:
    return asyncio.run(measure())


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
