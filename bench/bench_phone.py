"""The telephone bridge under load (issue 14).

    python bench/bench_phone.py [--backend assistant|emulator]      (or BENCH_PHONE_BACKEND; default assistant)
    python bench/bench_phone.py --pacer-order                       (the pacer alone: FrameTicker vs a timer per call)

The bridge runs in its own process (``--serve``: aiohttp server + calls + a headless session, i.e. one AVS
connection, per call), answered by the back-end ``avsd.backends.open_backend`` starts (``--serve-backend``, as
``avsd phone --backend`` does, never ending uploads itself) in a third process: its CPU is not the bridge's. The
issue's targets are stated for ``assistant``, the offline assistant (pocketsphinx, skills, espeak-ng); ``emulator``
answers every question with the same ~4 s MP3. This process runs the simulated callers (``avsd.phone.sim``,
Twilio's exact messages, paced at real time): first one call alone, then CALLS concurrent calls, each saying "Alexa,
what time is it?" and hearing the reply.

- latency p95: the caller's end of speech -> first reply audio at the caller, with the bridge's split
  (endpointing = 400 ms of trailing silence + VAD; back-end = Recognize -> Speak MP3 complete, speech recognition
  and TTS included for the assistant; decode = MP3 -> PCM -> resample -> first frame out);
- pacing: interval between outbound frames inside a reply, at the bridge (send times) and at the caller (arrival);
  p95 of |interval - 20 ms| and the largest gap;
- underruns: frames the bridge sent more than a frame late, and times a caller's playout buffer ran dry;
- CPU and memory per call: the bridge process's CPU time and RSS growth over the concurrent run, per call (the
  back-end process's CPU is printed beside it);
- the machine's share: an idle process waking every 20 ms (its lateness is what any process gets) and the load.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from avsd.audio.wav_source import load_wav  # noqa: E402
from avsd.phone.sim import SimResult, simulate  # noqa: E402

CALLS = int(os.environ.get("BENCH_PHONE_CALLS", "20"))
# The assistant's speech recognition in this many worker processes (``assistant.decoder_processes``; 0 = one
# thread of the back-end's process, one question at a time).
ONE_AT_A_TIME = 5  # calls measured one after another, before the concurrent ones
DECODERS = int(os.environ.get("BENCH_PHONE_DECODERS", str(os.cpu_count() or 1)))
BACKENDS = ("assistant", "emulator")
TOKEN = "bench-twilio-auth-token"
SPEECH = HERE.parent / "tests" / "fixtures" / "alexa-what-time-is-it.wav"


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 2 else (values[0] if values else float("nan"))


# ----- the bridge process ----------------------------------------------------------------------------------------

async def serve(base_url: str, ca_file: str, refresh_token: str, stats_path: str) -> None:
    import dataclasses

    from avsd.backends import Backend, BackendSession
    from avsd.config import Config
    from avsd.phone.backend import call_backend
    from avsd.phone.bridge import PhoneBridge
    from avsd.phone.settings import PhoneSecrets, PhoneSettings
    from avsd.web import WebServer

    # The back-end runs in its own process (serve_backend): here only where it listens, as avsd phone gets it.
    where = BackendSession(Backend.EMULATOR, endpoint=base_url, ca_file=ca_file, refresh_token=refresh_token)
    async with call_backend(where, Config()) as be:
        bridge = PhoneBridge(PhoneSettings(port=0), be, PhoneSecrets(twilio_auth_token=TOKEN))
        async with WebServer(bridge.app(), "127.0.0.1", 0) as server:
            print(server.port, flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            lateness: list[float] = []

            async def canary() -> None:  # the bridge's own loop: how late a 20 ms timer fires in it
                due = loop.time()
                while True:
                    due += 0.02
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    lateness.append((loop.time() - due) * 1000)

            task = asyncio.create_task(canary())
            await stop.wait()
            task.cancel()
            calls = [*bridge.ended, *bridge.calls_by_id.values()]
            stats = [
                {"turns": [dataclasses.asdict(t) for t in c.stats.turns],
                 "send_times": c.stats.reply_send_times, "underruns": c.stats.underruns}
                for c in calls
            ]
            Path(stats_path).write_text(json.dumps({"calls": stats, "loop_lateness": lateness}))  # noqa: ASYNC240 - at exit, nothing else runs


async def serve_backend(name: str, cert_dir: str) -> None:
    """The back-end as ``avsd phone --backend NAME`` starts it; prints its URL, CA file and refresh token."""
    from avsd.backends import Backend, open_backend
    from avsd.config import Config, override

    config = override(Config(), "assistant.decoder_processes", DECODERS)
    async with open_backend(Backend(name), cert_dir=Path(cert_dir), stop_capture=False, config=config) as where:
        print(where.endpoint, where.ca_file, where.refresh_token, sep="\n", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


# ----- the pacer alone (--pacer-order) -------------------------------------------------------------------------

async def pacer_order(calls: int = 20, frames: int = 150, send_s: float = 65e-6) -> list[dict[str, Any]]:
    """``calls`` pacers in one loop, each send costing ``send_s`` of CPU (a websocket send on this VM): how much a
    call's place inside a tick's burst of sends moves from tick to tick, with one timer per call at the same instant
    (the pacer before FrameTicker) and with the FrameTicker. Needs no network and little CPU: the load hardly moves it.
    """
    import math

    from avsd.phone.call import LINE_FRAME_S, frame_ticker

    def send() -> None:
        end = time.perf_counter() + send_s
        while time.perf_counter() < end:
            pass

    def wake(waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    async def timer_per_call(out: list[float]) -> None:
        loop = asyncio.get_running_loop()
        tick = math.ceil(loop.time() / LINE_FRAME_S)
        for i in range(frames):
            waiter = loop.create_future()
            handle = loop.call_at((tick + i + 1) * LINE_FRAME_S, wake, waiter)
            try:
                await waiter
            finally:
                handle.cancel()
            send()
            out.append(time.monotonic())

    async def ticker(out: list[float]) -> None:
        clock = frame_ticker()
        tick = clock.now()
        for i in range(frames):
            await clock.until(tick + i + 1)
            send()
            out.append(time.monotonic())

    rows = []
    for name, pacer in (("timer_per_call", timer_per_call), ("frame_ticker", ticker)):
        outs: list[list[float]] = [[] for _ in range(calls)]
        await asyncio.gather(*(pacer(out) for out in outs))
        firsts = [min(out[i] for out in outs) for i in range(frames)]
        moves = [abs((out[i + 1] - firsts[i + 1]) - (out[i] - firsts[i])) * 1000
                 for out in outs for i in range(frames - 1)]
        ranks = [{c: r for r, c in enumerate(sorted(range(calls), key=lambda c: outs[c][i]))} for i in range(frames)]
        shuffled = statistics.mean(abs(ranks[i + 1][c] - ranks[i][c]) for c in range(calls) for i in range(frames - 1))
        rows.append({"metric": f"phone_pacer_{name}_place_change_mean", "value": round(shuffled, 2),
                     "unit": "places a call moves inside the tick's order of sends from one tick to the next (mean; "
                     "does not depend on the load)", "target": "info"})
        rows.append({"metric": f"phone_pacer_{name}_offset_change_p95_ms", "value": round(p95(moves), 2),
                     "unit": f"ms, change of a call's offset inside the tick's burst from one tick to the next "
                     f"({calls} calls, {send_s * 1e6:.0f} us per send; max {max(moves):.2f} ms; "
                     f"load {os.getloadavg()[0]:.1f})",
                     "target": "info: adds to |interval - 20 ms|"})
    return rows


# ----- the callers -----------------------------------------------------------------------------------------------

def _proc(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process and its living children, e.g. the assistant's decoder processes; RSS MB of the
    process)."""
    cpu = sum(_cpu_s(p) for p in (pid, *_children(pid)))
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:")) / 1024
    return cpu, rss


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # ended meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                for c in (t / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


async def _calls(url: str, pcm: bytes, count: int, pid: int) -> tuple[list[SimResult], float, float, float]:
    peak = [0.0]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], _proc(pid)[1])
            await asyncio.sleep(0.25)

    cpu0, _ = _proc(pid)
    started = time.monotonic()
    sampler = asyncio.create_task(sample())
    results = await asyncio.gather(*[
        _staggered(i * 0.1, url, pcm, f"+1555{i:07d}") for i in range(count)
    ])
    sampler.cancel()
    cpu1, _ = _proc(pid)
    return list(results), cpu1 - cpu0, time.monotonic() - started, peak[0]


async def _staggered(delay: float, url: str, pcm: bytes, caller: str) -> SimResult:
    await asyncio.sleep(delay)
    return await simulate("twilio", url, pcm, caller=caller, twilio_auth_token=TOKEN, idle_s=1.0, timeout_s=60)


def _intervals_ms(send_times: list[list[float]]) -> list[float]:
    return [(b - a) * 1000 for reply in send_times for a, b in itertools.pairwise(reply[1:])]


CANARY = """
import asyncio, json, sys, time
async def main():
    late = []
    loop = asyncio.get_running_loop()
    due = loop.time()
    end = due + float(sys.argv[1])
    while due < end:
        due += 0.02
        await asyncio.sleep(max(0.0, due - loop.time()))
        late.append((loop.time() - due) * 1000)
    print(json.dumps(late))
asyncio.run(main())
"""


def _canary(seconds: float) -> subprocess.Popen[str]:
    """An empty process that only wakes every 20 ms, at this same priority: how late the machine wakes anyone."""
    return subprocess.Popen([sys.executable, "-c", CANARY, str(seconds)], stdout=subprocess.PIPE, text=True)


def _bridge_priority() -> None:
    """``BENCH_BRIDGE_NICE=N`` runs the bridge process at nice N (the rest keeps the bench's own niceness)."""
    if "BENCH_BRIDGE_NICE" in os.environ:
        os.setpriority(os.PRIO_PROCESS, 0, int(os.environ["BENCH_BRIDGE_NICE"]))


def _start_backend(name: str, tmp: Path) -> tuple[subprocess.Popen[str], str, str, str]:
    """The back-end in its own process: its CPU is neither the bridge's nor the callers'."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-backend", name, str(tmp / "certs")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    assert proc.stdout is not None
    base, ca_file, token = (proc.stdout.readline().strip() for _ in range(3))
    if not token:
        raise RuntimeError(f"the {name} back-end did not start (exit {proc.wait(30)})")
    return proc, base, ca_file, token


def run(backend: str = os.environ.get("BENCH_PHONE_BACKEND", "assistant")) -> list[dict[str, Any]]:
    pcm = load_wav(SPEECH)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        back_end, base_url, ca_file, refresh_token = _start_backend(backend, tmp)
        stats_path = tmp / "stats.json"
        log = (tmp / "bridge.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", base_url, ca_file, refresh_token, str(stats_path)],
            stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)},
            preexec_fn=_bridge_priority,  # only sets the child's nice value
        )
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            url = f"http://127.0.0.1:{port}"
            # One call at a time first: the first is the warm-up (lazy imports, first TLS stream), the others give
            # the latency of a caller who has the line to themselves.
            single = [asyncio.run(_calls(url, pcm, 1, proc.pid))[0][0] for _ in range(1 + ONE_AT_A_TIME)]
            _, rss_idle = _proc(proc.pid)
            canary = _canary(10.0)
            backend_cpu0, _ = _proc(back_end.pid)
            load_before = os.getloadavg()[0]
            results, cpu_s, wall_s, rss_peak = asyncio.run(_calls(url, pcm, CALLS, proc.pid))
            backend_cpu_s = _proc(back_end.pid)[0] - backend_cpu0
            canary_late = json.loads(canary.communicate(timeout=60)[0])
        finally:
            for child in (proc, back_end):
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(5)
            log.close()
        served = json.loads(stats_path.read_text())
        calls = served["calls"][len(single):]
        alone = [t for c in served["calls"][:len(single)] for t in c["turns"]]
        if os.environ.get("BENCH_DEBUG"):
            print((tmp / "bridge.log").read_text()[-9000:], file=sys.stderr)
    latencies = [x for r in results for x in r.latencies()]
    alone_latencies = [x for r in single[1:] for x in r.latencies()]
    if os.environ.get("BENCH_DEBUG"):
        for r in results[:3]:
            print(sorted(r.timeline), file=sys.stderr)
    turns = [t for c in calls for t in c["turns"]]
    bridge_iv = _intervals_ms([reply for c in calls for reply in c["send_times"]])
    if os.environ.get("BENCH_DEBUG"):
        Path("/tmp/phone-bridge-intervals.json").write_text(json.dumps(
            [[round((b - a) * 1000, 2) for a, b in itertools.pairwise(reply[1:])]
             for c in calls for reply in c["send_times"]]))
    caller_iv = [x * 1000 for r in results for reply in r.reply_intervals() for x in reply[4:]]  # after the lead
    heard = sum(len(r.received) for r in results) / 2 / 8000
    rows += [
        {"metric": "phone_backend", "value": backend, "unit": f"{CALLS} concurrent calls"
         + (f", speech recognition in {DECODERS} worker processes" if backend == "assistant" else ""),
         "target": "info"},
        {"metric": "phone_calls_answered", "value": sum(1 for r in results if r.latencies()), "unit": "calls",
         "target": f"{CALLS}"},
        {"metric": "phone_latency_p95_ms", "value": round(p95(latencies) * 1000), "unit": "ms, caller's end of "
         f"speech -> first reply audio at the caller ({len(latencies)} turns, {CALLS} concurrent calls)",
         "target": "<= 800"},
        {"metric": "phone_latency_one_at_a_time_p95_ms", "value": round(p95(alone_latencies) * 1000) if alone_latencies
         else None, "unit": f"ms, the same over {len(alone_latencies)} calls one after another (after a warm-up call); "
         "split of each: " + "; ".join(
             f"endpointing {(t['endpointed'] - t['speech_end']) * 1000:.0f}, back-end "
             f"{(t['answered'] - t['endpointed']) * 1000:.0f}, decode {(t['first_frame'] - t['answered']) * 1000:.0f}"
             for t in alone[1:]), "target": "<= 800"},
        {"metric": "phone_latency_split_endpointing_p95_ms",
         "value": round(p95([(t["endpointed"] - t["speech_end"]) * 1000 for t in turns])), "unit": "ms (400 ms "
         "of it is the configured trailing silence)", "target": "info"},
        {"metric": "phone_latency_split_backend_p95_ms",
         "value": round(p95([(t["answered"] - t["endpointed"]) * 1000 for t in turns])),
         "unit": f"ms, Recognize -> Speak MP3 complete ({backend})", "target": "info"},
        {"metric": "phone_latency_split_decode_p95_ms",
         "value": round(p95([(t["first_frame"] - t["answered"]) * 1000 for t in turns])),
         "unit": "ms, MP3 -> PCM -> 8 kHz -> mu-law -> first frame sent", "target": "info"},
        {"metric": "phone_pacing_bridge_dev_p95_ms", "value": round(p95([abs(x - 20) for x in bridge_iv]), 2),
         "unit": f"ms, |interval - 20 ms| between frames sent ({len(bridge_iv)} intervals)", "target": "<= 3"},
        {"metric": "phone_pacing_bridge_max_gap_ms", "value": round(max(bridge_iv), 1), "unit": "ms",
         "target": "<= 60"},
        {"metric": "phone_pacing_caller_dev_p95_ms", "value": round(p95([abs(x - 20) for x in caller_iv]), 2),
         "unit": "ms, |interval - 20 ms| between frames arriving at the simulated callers", "target": "<= 3"},
        {"metric": "phone_pacing_caller_max_gap_ms", "value": round(max(caller_iv), 1), "unit": "ms",
         "target": "<= 60"},
        {"metric": "phone_underruns", "value": sum(c["underruns"] for c in calls) + sum(r.underruns for r in results),
         "unit": "late frames at the bridge + dry playout buffers at the callers", "target": "0"},
        {"metric": "machine_wakeup_lateness_p95_ms", "value": round(p95(canary_late), 1),
         "unit": f"ms: an idle process at this priority asking to wake every 20 ms during the calls (max "
         f"{max(canary_late):.0f} ms, load average {load_before:.1f} before the calls, {os.getloadavg()[0]:.1f} "
         "after)", "target": "info: the machine's share"},
        {"metric": "bridge_loop_lateness_p95_ms", "value": round(p95(served["loop_lateness"]), 1),
         "unit": f"ms: a 20 ms timer inside the bridge's own event loop, whole run (max "
         f"{max(served['loop_lateness']):.0f} ms)", "target": "info: the bridge's own load"},
        {"metric": "phone_cpu_per_call_percent", "value": round(100 * cpu_s / wall_s / CALLS, 2),
         "unit": f"% of one core per call (bridge process, {CALLS} calls over {wall_s:.1f} s, {heard:.0f} s of "
         "reply audio)", "target": "info"},
        {"metric": "phone_backend_cpu_per_call_percent", "value": round(100 * backend_cpu_s / wall_s / CALLS, 2),
         "unit": f"% of one core per call ({backend} back-end process, its own process)", "target": "info"},
        {"metric": "phone_memory_per_call_mb", "value": round((rss_peak - rss_idle) / CALLS, 2),
         "unit": f"MB RSS growth per concurrent call (idle {rss_idle:.1f} MB, peak {rss_peak:.1f} MB)",
         "target": "<= 5"},
    ]
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--pacer-order":
        for row in asyncio.run(pacer_order()):
            print(json.dumps(row))
    elif len(sys.argv) > 1 and sys.argv[1] == "--serve-backend":
        asyncio.run(serve_backend(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--serve":
        if os.environ.get("BENCH_PROFILE"):  # where the bridge's CPU goes, sorted, to the bridge log
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.runcall(asyncio.run, serve(*sys.argv[2:6]))
            pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        else:
            asyncio.run(serve(*sys.argv[2:6]))
    else:
        import argparse

        parser = argparse.ArgumentParser(description="the telephone bridge under load")
        parser.add_argument("--backend", choices=BACKENDS, default=os.environ.get("BENCH_PHONE_BACKEND", "assistant"))
        for row in run(parser.parse_args().backend):
            print(json.dumps(row))
