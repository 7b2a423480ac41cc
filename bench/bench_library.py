"""avsd as a library (issue 12), against the local AVS server running in its OWN process (as a remote server is).

- library_first_audio_ms_median: start of the request -> first byte of reply audio for one 3 s utterance
  (16 kHz WAV, CLOSE_TALK), avsd's sync ``Client.send_audio_file``; 20 asks after a warm-up, one connection.
  ``library_reply_ms_median`` is start -> the call returned with the whole reply.
- alexa_client_reply_ms_median: the same WAV through alexa_client 1.5.1's ``send_audio_file`` (its own venv under
  /tmp, Python 3.11, a sitecustomize restoring the ``collections`` ABC aliases so ``hyper`` imports). alexa_client
  reads the whole response before returning, so its first reply-audio byte is available when the call returns.
- concurrent_10_wall_ratio: 10 asks at once with 1 s server think time (headers at once, the answer after 1 s,
  as AVS answers a Recognize) / one ask alone; concurrent_8_wall_ratio the same for 8 (the client's stream cap).
- memory_per_concurrent_ask_mb: tracemalloc peak of 10 concurrent asks minus that of one, per extra ask.
- sync_client_import_s / sync_client_connect_s: ``import avsd; avsd.Client(...)`` and ``connect()`` in a fresh
  interpreter (median of 5), interpreter start-up excluded.

Run: python bench/bench_library.py [--alexa-venv /tmp/alexa-bench-venv]
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
import wave
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ALEXA_VENV = Path(os.environ.get("AVSD_BENCH_ALEXA_VENV", "/tmp/alexa-bench-venv"))
ASKS = 20

# The server process: the emulator, optionally with think time after the early Recognize headers.
SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from avsd.emulator.events import EventHandler
    from avsd.emulator.server import Emulator

    class Thinking(EventHandler):
        def __init__(self, emulator, think_s):
            super().__init__(emulator)
            self.think_s = think_s

        async def render(self, spec, dialog_request_id, event=None):
            await asyncio.sleep(self.think_s)
            return await super().render(spec, dialog_request_id, event)

    async def main():
        port, think_s, cert_dir, token = int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
        emu = Emulator(port=port, cert_dir=cert_dir, refresh_token=token, stop_capture=False)
        if think_s:
            emu._events = Thinking(emu, think_s)
        await emu.start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)

SITECUSTOMIZE = textwrap.dedent(
    """
    # hyper 0.7 imports ABCs from `collections` (removed in Python 3.10); restore the aliases (benchmark venv only).
    import collections
    import collections.abc
    for _name in ("Iterable", "Mapping", "MutableMapping", "MutableSet", "Sequence", "Callable"):
        setattr(collections, _name, getattr(collections.abc, _name))
    """
)

ALEXA_DRIVER = textwrap.dedent(
    """
    import io, json, os, sys, time
    import hyper.tls
    from alexa_client import AlexaClient
    from alexa_client.alexa_client import authentication
    from alexa_client.refreshtoken.helpers import AmazonOauth2RequestManager

    base, ca, token_url, refresh, wav_path, asks, access = sys.argv[1:8]
    hyper.tls.cert_loc = ca  # trust the local server's self-signed certificate
    AmazonOauth2RequestManager.access_token_url = token_url
    if access:  # the server has no HTTP/1.1 LWA: use an access token obtained over HTTP/2 instead
        authentication.AlexaVoiceServiceTokenAuthenticator.retrieve_api_token = lambda self: access
    os.environ["REQUESTS_CA_BUNDLE"] = ca
    wav = open(wav_path, "rb").read()
    client = AlexaClient(client_id="bench", secret="", refresh_token=refresh, base_url=base)
    client.connect()
    out = []
    for i in range(int(asks) + 1):
        started = time.perf_counter()
        directives = list(client.send_audio_file(io.BytesIO(wav)))
        took = time.perf_counter() - started
        assert [d.name for d in directives] == ["Speak"] and len(directives[0].audio_attachment) > 1000
        if i:
            out.append(took * 1000)
    print(json.dumps(out))
    os._exit(0)  # alexa_client's ping timer thread is not a daemon
    """
)

AVSD_DRIVER = textwrap.dedent(
    """
    import io, json, sys, time
    import avsd

    base, ca, refresh, wav_path, asks = sys.argv[1:6]
    wav = open(wav_path, "rb").read()
    first, whole = [], []
    with avsd.Client("bench", None, refresh, base, ca_file=ca) as client:
        for i in range(int(asks) + 1):
            started = time.perf_counter()
            reply = client.ask(io.BytesIO(wav))
            took = time.perf_counter() - started
            assert [d.name for d in reply.directives] == ["Speak"] and len(reply.speech) > 1000
            if i:
                first.append(reply.first_audio_s * 1000)
                whole.append(took * 1000)
    print(json.dumps([first, whole]))
    """
)

IMPORT_CONNECT = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import avsd
    client = avsd.Client("bench", None, sys.argv[3], sys.argv[1], ca_file=sys.argv[2])
    t1 = time.perf_counter()
    client.connect()
    t2 = time.perf_counter()
    client.close()
    print(json.dumps([t1 - t0, t2 - t1]))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, tmp: Path, think_s: float) -> None:
        self.port, self.token = free_port(), "Atzr|bench-refresh-token"
        self.ca = tmp / "certs" / "emulator-cert.pem"
        self.base = f"https://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(self.port), str(think_s), str(tmp / "certs"), self.token],
            stdout=subprocess.PIPE, env=env, text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def three_second_wav(path: Path) -> bytes:
    from avsd.audio.wav_source import load_wav

    pcm = load_wav(REPO / "tests" / "fixtures" / "alexa-what-time-is-it.wav")
    pcm = (pcm + bytes(96000))[:96000]  # exactly 3 s
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(pcm)
    path.write_bytes(out.getvalue())
    return pcm


def run_json(argv: list[str], *, python: str = sys.executable) -> Any:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([python, "-c", *argv], capture_output=True, text=True, timeout=600, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def access_token(server: Server) -> str:
    """An access token from the server's LWA over HTTP/2 (for a client whose HTTP/1.1 sign-in it cannot serve)."""
    import httpx

    from avsd.avs.client import make_ssl_context

    with httpx.Client(http2=True, verify=make_ssl_context(str(server.ca))) as http:
        answer = http.post(server.base + "/auth/o2/token",
                           data={"grant_type": "refresh_token", "refresh_token": server.token, "client_id": "b"})
        return str(answer.json()["access_token"])


def lwa_over_http11(server: Server) -> bool:
    import httpx

    from avsd.avs.client import make_ssl_context

    try:
        with httpx.Client(http1=True, http2=False, verify=make_ssl_context(str(server.ca))) as http:
            answer = http.post(server.base + "/auth/o2/token",
                               json={"grant_type": "refresh_token", "refresh_token": server.token, "client_id": "b"})
            return answer.status_code == 200
    except httpx.HTTPError:
        return False


def latency_rows(tmp: Path, wav_path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    server = Server(tmp, 0.0)
    try:
        first, whole = run_json([AVSD_DRIVER, server.base, str(server.ca), server.token, str(wav_path), str(ASKS)])
        rows.append(row("library_first_audio_ms_median", statistics.median(first), "ms",
                        "<= alexa_client 1.5.1 send_audio_file"))
        rows.append(row("library_reply_ms_median", statistics.median(whole), "ms", ""))
        python = ALEXA_VENV / "bin" / "python"
        if not python.exists():
            rows.append(row("alexa_client_reply_ms_median", None, "ms", f"not measured: no {python}"))
            return rows
        site = next((ALEXA_VENV / "lib").glob("python3*/site-packages"))
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        http11 = lwa_over_http11(server)
        access = "" if http11 else access_token(server)
        host = server.base.removeprefix("https://")
        theirs = run_json([ALEXA_DRIVER, host, str(server.ca), server.base + "/auth/o2/token", server.token,
                           str(wav_path), str(ASKS), access], python=str(python))
        note = "signed in over HTTP/1.1 + JSON" if http11 else "sign-in bypassed (server has no HTTP/1.1 LWA)"
        rows.append(row("alexa_client_reply_ms_median", statistics.median(theirs), "ms", note))
    finally:
        server.stop()
    return rows


async def concurrent(server: Server, pcm: bytes) -> list[dict[str, Any]]:
    import avsd

    rows: list[dict[str, Any]] = []
    async with avsd.AsyncClient("bench", None, server.token, server.base, ca_file=server.ca) as client:
        await client.ask(pcm)  # warm-up (MP3 synthesis cached, token fetched)
        started = time.perf_counter()
        await client.ask(pcm)
        one = time.perf_counter() - started
        for n in (8, 10):
            started = time.perf_counter()
            replies = await asyncio.gather(*(client.ask(pcm) for _ in range(n)))
            wall = time.perf_counter() - started
            assert all(r.speech for r in replies)
            rows.append(row(f"concurrent_{n}_wall_ratio", wall / one, "x one ask",
                            "<= 1.5" if n == 10 else "", extra={"wall_s": round(wall, 3), "one_s": round(one, 3)}))
        tracemalloc.start()
        await client.ask(pcm)
        _, peak_one = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        base_now, _ = tracemalloc.get_traced_memory()
        await asyncio.gather(*(client.ask(pcm) for _ in range(10)))
        _, peak_ten = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        per_ask = max(0, peak_ten - max(peak_one, base_now)) / 9 / 2**20
        rows.append(row("memory_per_concurrent_ask_mb", per_ask, "MiB", "<= 2"))
    return rows


def row(
    metric: str, value: float | None, unit: str, target: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"metric": metric, "value": None if value is None else round(value, 3), "unit": unit, "target": target,
            **(extra or {})}


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wav_path = tmp / "three-seconds.wav"
        pcm = three_second_wav(wav_path)
        rows = latency_rows(tmp, wav_path)
        server = Server(tmp, 1.0)
        try:
            rows += asyncio.run(concurrent(server, pcm))
            times = [run_json([IMPORT_CONNECT, server.base, str(server.ca), server.token]) for _ in range(5)]
        finally:
            server.stop()
        rows.append(row("sync_client_import_s", statistics.median(t[0] for t in times), "s", ""))
        rows.append(row("sync_client_connect_s", statistics.median(t[1] for t in times), "s", ""))
    return rows


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result))
