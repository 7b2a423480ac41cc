"""Alarms across daemon processes: ``python -m avsd run --config <toml> --input <silent wav>`` against an emulator
in the test process; the state dir is shared by the processes, as on a device across a reboot.

- SetAlert, then the daemon is stopped; a new process rings the alarm at its time and reports AlertStarted.
- ``kill -9`` after the SetAlertSucceeded left the device but before AVS answered it: the new process sends it
  again (same messageId: at-least-once) and still rings the alarm.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from avsd.agents.alert_schedule import format_time
from avsd.avs.messages import Directive
from avsd.emulator.scenario import Rule
from avsd.emulator.server import Emulator
from bench.bench_kill9 import write_config

ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def daemon_process(tmp_path: Path, config: Path, name: str) -> AsyncIterator[subprocess.Popen[bytes]]:
    log = (tmp_path / f"{name}.log").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block; waits go through to_thread
        [sys.executable, "-m", "avsd", "run", "--config", str(config), "--input", str(tmp_path / "silence.wav")],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        log.close()


def alarm(token: str, seconds_ahead: int) -> tuple[Directive, datetime]:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds_ahead)
    payload = {"token": token, "type": "ALARM", "scheduledTime": format_time(when)}
    return Directive.new("Alerts", "SetAlert", payload), when


def tokens_of(emulator: Emulator, name: str) -> list[str]:
    return [r.event["event"]["payload"]["token"] for r in emulator.records if r.qualified_name == name and r.event]


async def test_alarm_survives_a_restart_of_the_daemon_process(tmp_path: Path) -> None:
    async with asyncio.timeout(40), Emulator(cert_dir=tmp_path / "certs") as emulator:
        config = write_config(tmp_path, emulator, silence_s=20.0)
        async with daemon_process(tmp_path, config, "first") as first:
            await emulator.wait_for_event("System.SynchronizeState", timeout=15)
            directive, when = alarm("alarm-restart", 6)
            await emulator.push_directive(directive)
            await emulator.wait_for_event("Alerts.SetAlertSucceeded", timeout=5)
            await asyncio.sleep(0.2)  # let the 204 reach the device so its outbox entry is acknowledged
            first.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(first.wait, 5) == 0
        async with daemon_process(tmp_path, config, "second"):
            sync = await emulator.wait_for_event("System.SynchronizeState", timeout=15, count=2)
            alerts = [c for c in sync.event["context"] if c["header"]["namespace"] == "Alerts"]
            assert alerts[0]["payload"]["allAlerts"][0]["token"] == "alarm-restart"
            await emulator.wait_for_event("Alerts.AlertStarted", timeout=15)
            assert datetime.now(UTC) >= when
    assert tokens_of(emulator, "Alerts.AlertStarted") == ["alarm-restart"]
    assert tokens_of(emulator, "Alerts.SetAlertSucceeded") == ["alarm-restart"]
    assert sorted((tmp_path / "played").glob("alert-*.wav")), "the new process did not sound the alarm"


async def test_kill_9_before_set_alert_succeeded_is_acknowledged_loses_nothing(tmp_path: Path) -> None:
    async with asyncio.timeout(40), Emulator(cert_dir=tmp_path / "certs") as emulator:
        config = write_config(tmp_path, emulator, silence_s=20.0)
        # AVS "receives" the first SetAlertSucceeded but never answers it before the power goes.
        emulator.add_rule(Rule(match="Alerts.SetAlertSucceeded", times=1, delay_s=60.0))
        async with daemon_process(tmp_path, config, "first") as first:
            await emulator.wait_for_event("System.SynchronizeState", timeout=15)
            directive, when = alarm("alarm-kill9", 6)
            await emulator.push_directive(directive)
            first_send = await emulator.wait_for_event("Alerts.SetAlertSucceeded", timeout=5)
            first.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(first.wait, 5) == -signal.SIGKILL
        async with daemon_process(tmp_path, config, "second"):
            again = await emulator.wait_for_event("Alerts.SetAlertSucceeded", timeout=15, count=2)
            await emulator.wait_for_event("Alerts.AlertStarted", timeout=15)
            assert datetime.now(UTC) >= when
    # The same message again (at-least-once), then the alarm rang in the new process.
    assert again.event["event"]["header"]["messageId"] == first_send.event["event"]["header"]["messageId"]
    assert tokens_of(emulator, "Alerts.AlertStarted") == ["alarm-kill9"]
    assert sorted((tmp_path / "played").glob("alert-*.wav"))
