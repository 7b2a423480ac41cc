"""Alerts agent benchmarks with real parts (SQLite store, outbox, WAV-sink player), no network:

- ``alert_ring_lateness_ms``: how late the first sample of the alarm leaves the player after ``scheduledTime``
  (median and worst of several alarms); the done criterion is +-250 ms.
- ``set_alert_to_succeeded_ms``: SetAlert handled -> SetAlertSucceeded durable in the outbox (two fsynced
  commits: the alert, then the event).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from avsd.agents.alert_schedule import format_time
from avsd.agents.alert_store import AlertStore
from avsd.agents.alerts import AlertsAgent
from avsd.agents.outbox import Outbox
from avsd.avs.messages import Directive, Event
from avsd.playback.pcm import WavSinkPlayer


class _NoEvents:
    def send(self, event: Event) -> None:
        return None


async def _never(body: bytes) -> None:
    await asyncio.Event().wait()


async def _measure(root: Path) -> tuple[list[float], list[float]]:
    store = AlertStore(root / "alerts.sqlite")
    outbox = Outbox(root / "outbox.sqlite", _never, connected=False)
    player = WavSinkPlayer(root / "played", label="alert")
    agent = AlertsAgent(store=store, certified=outbox, events=_NoEvents(), player=player)
    task = asyncio.create_task(agent.run())
    lateness: list[float] = []
    set_ms: list[float] = []
    try:
        for n in range(5):
            when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
            directive = Directive.new(
                "Alerts", "SetAlert", {"token": f"b{n}", "type": "TIMER", "scheduledTime": format_time(when)}
            )
            t0 = time.perf_counter()
            await agent.handle(directive)
            set_ms.append((time.perf_counter() - t0) * 1000)
            async with asyncio.timeout(5):
                while len(agent.sounded) <= n:  # noqa: ASYNC110 - a tight poll measures the ring time best
                    await asyncio.sleep(0.002)
            lateness.append((agent.sounded[n][1] - when).total_seconds() * 1000)
            await agent.stop_active()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await player.close()
        outbox.close()
        store.close()
    return lateness, set_ms


def run() -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        lateness, set_ms = asyncio.run(_measure(Path(tmp)))
    return [
        {"metric": "alert_ring_lateness_ms_median", "value": round(statistics.median(lateness), 1), "unit": "ms",
         "target": "<= 250"},
        {"metric": "alert_ring_lateness_ms_max", "value": round(max(lateness), 1), "unit": "ms", "target": "<= 250"},
        {"metric": "set_alert_to_succeeded_ms_median", "value": round(statistics.median(set_ms), 1), "unit": "ms",
         "target": "<= 100"},
    ]


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
