"""kill -9 durability, the short version of bench/bench_kill9.py: the real daemon process against the emulator,
killed with SIGKILL once before an alarm's time and once while it rings.

Reproducer for issue 8 defect 6: before, the process that took over after a kill while ringing sent a second
AlertStarted with a new messageId. Now: one messageId per alert for AlertStarted and for AlertStopped, nothing
lost, the alarm rings on time in the process that took over, and both SQLite files pass integrity_check.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.bench_kill9 import measure


async def test_kill_9_before_and_while_ringing_keeps_one_message_id_per_alert(tmp_path: Path) -> None:
    async with asyncio.timeout(150):
        result = await measure(tmp_path, rounds=2)
    assert result.crashes == []
    assert sorted(result.started_ids) == ["k9-0", "k9-1"] and result.lost == []
    assert all(len(ids) == 1 for ids in result.started_ids.values()), result.started_ids
    assert all(len(ids) == 1 for ids in result.stopped_ids.values()), result.stopped_ids
    assert result.integrity == {"alerts.sqlite": "ok", "outbox.sqlite": "ok"}
    # Rang on time in the process that took over (k9-0) and in the one that set it (k9-1), counted from when the
    # process was up (a restart may take seconds on a loaded machine; a device that is down cannot ring). The bench
    # measures 0-3 ms; 250 ms is the alerts done criterion.
    assert sorted(result.ring_late_up_ms) == ["k9-0", "k9-1"], result.ring_late_up_ms
    assert all(-50 <= late <= 250 for late in result.ring_late_up_ms.values()), result.ring_late_up_ms
    assert len(result.late_ms) == 2  # AlertStarted arrived for both
