"""The web stack (issue 14): aiohttp against Starlette + uvicorn, as a front-end process would start them.

For each, a fresh Python process imports the framework, serves ``GET /healthz`` on loopback, and is measured:

- start_ms: process spawn -> first 200 from /healthz (median of RUNS);
- start_cpu_ms: CPU time (user + system) the process used until then: unlike wall time, not inflated by other
  load on the machine;
- rss_mb: resident memory of that process once it has answered (median of RUNS).

The two are measured alternately, so both see the same background load.

Both serve a websocket route (what the bridge needs): uvicorn then loads its websocket implementation. Starlette,
uvicorn and websockets are not avsd dependencies: put them on ``WEB_BENCH_PATH`` (a ``pip install --target DIR
starlette uvicorn websockets`` directory) to include them; without it their rows say so.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

RUNS = 7

AIOHTTP = """
import sys
from aiohttp import web
async def health(request):
    return web.json_response({"status": "ok"})
app = web.Application()
async def socket(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.close()
    return ws
app.add_routes([web.get("/healthz", health), web.get("/socket", socket)])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

STARLETTE = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
async def health(request):
    return JSONResponse({"status": "ok"})
async def socket(ws):
    await ws.accept()
    await ws.close()
app = Starlette(routes=[Route("/healthz", health), WebSocketRoute("/socket", socket)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error", access_log=False, lifespan="off")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")  # utime + stime


def _once(source: str, extra_path: str) -> tuple[float, float, float]:
    port = _free_port()
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), extra_path) if p)
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", source, str(port)], env=env)
    try:
        deadline = start + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.005)
        elapsed = time.monotonic() - start
        return elapsed * 1000, _rss_mb(proc.pid), _cpu_ms(proc.pid)
    finally:
        proc.kill()  # shutdown is not measured (aiohttp's graceful shutdown waits for idle keep-alives)
        proc.wait(10)


def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    extra = os.environ.get("WEB_BENCH_PATH", "")
    stacks = {"aiohttp": AIOHTTP, "starlette_uvicorn": STARLETTE}
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in stacks}
    failed: dict[str, str] = {}
    for _ in range(RUNS):
        for name, source in stacks.items():
            if name in failed:
                continue
            try:
                samples[name].append(_once(source, extra))
            except RuntimeError as exc:
                failed[name] = str(exc)
    for name in stacks:
        if name in failed:
            rows.append({"metric": f"web_{name}_start_ms", "value": None, "unit": "ms",
                         "target": f"skipped: {failed[name]} (set WEB_BENCH_PATH for Starlette + uvicorn)"})
            continue
        runs = samples[name]
        for index, metric, unit in (
            (0, "start_ms", "ms wall, spawn -> first /healthz answer"),
            (2, "start_cpu_ms", "ms CPU (user+sys) until the first answer"),
            (1, "rss_mb", "MB resident after the first answer"),
        ):
            rows.append({"metric": f"web_{name}_{metric}", "value": round(statistics.median(r[index] for r in runs), 1),
                         "unit": f"{unit} (median of {RUNS})", "target": "lower is better"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
