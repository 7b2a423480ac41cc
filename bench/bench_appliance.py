"""Appliance benchmarks: `avsd run` start-up time to READY=1 (and to AVS connected) against a local emulator, and
the cost of parsing the documented config file."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
import time
import tomllib
import wave
from pathlib import Path

from avsd.avs.credentials import Credentials, save_credentials
from avsd.config import defaults_toml, parse_config
from avsd.emulator.server import Emulator


def _config_parse_ms(rounds: int = 200) -> float:
    text = defaults_toml()
    start = time.perf_counter()
    for _ in range(rounds):
        parse_config(tomllib.loads(text))
    return (time.perf_counter() - start) / rounds * 1000


async def _startup(tmp: Path) -> tuple[float, float]:
    async with Emulator(cert_dir=tmp / "certs") as emulator:
        state = tmp / "state"
        save_credentials(state / "credentials.json", Credentials("bench", emulator.refresh_token))
        config = tmp / "avsd.toml"
        config.write_text(
            f'[daemon]\nstate_dir = "{state}"\n[avs]\nendpoint = "{emulator.base_url}"\n'
            f'ca_file = "{emulator.ca_file}"\n[playback]\nbackend = "wav"\nwav_dir = "{tmp / "out"}"\n'
            '[button]\npin = -1\n'
        )
        wav = tmp / "in.wav"
        with wave.open(str(wav), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(bytes(16000 * 2 * 20))
        sock_path = os.path.join(tempfile.mkdtemp(prefix="avsd-bench-"), "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        start = loop.time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "avsd", "run", "--config", str(config), "--input", str(wav), "--hardware", "none",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "NOTIFY_SOCKET": sock_path},
        )
        ready = connected = 0.0
        try:
            async with asyncio.timeout(30):
                while not (ready and connected):
                    try:
                        message = sock.recv(4096).decode()
                    except BlockingIOError:
                        await asyncio.sleep(0.005)
                        continue
                    if message.startswith("READY=1") and not ready:
                        ready = loop.time() - start
                    if "AVS connected" in message and not connected:
                        connected = loop.time() - start
        finally:
            proc.terminate()
            await proc.wait()
            sock.close()
        return ready, connected


def run() -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        ready, connected = asyncio.run(_startup(Path(tmp)))
    return [
        {"metric": "avsd_run_start_to_ready_s", "value": round(ready, 3), "unit": "s", "target": "<= 5 (Pi 3)"},
        {"metric": "avsd_run_start_to_avs_connected_s", "value": round(connected, 3), "unit": "s",
         "target": "<= 8 (Pi 3)"},
        {"metric": "config_parse_ms", "value": round(_config_parse_ms(), 3), "unit": "ms", "target": "<= 5"},
    ]


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
