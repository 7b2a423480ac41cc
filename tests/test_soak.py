"""The fault soak's short version (bench/bench_soak.py runs 1,000 faults): every kind of fault the local server
can inject, twice, while direct, queued and certified events flow through the daemon built by the root."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from bench_soak import MENU, soak


async def test_short_fault_soak(tmp_path: Path) -> None:
    async with asyncio.timeout(240):
        result = await soak(tmp_path, faults=2 * len(MENU), seed=8)
    assert result.faults == 2 * len(MENU) and len(result.kinds) == len(MENU)
    assert result.crashes == 0, result.crash
    assert result.not_reconnected == 0
    assert result.reconnects_s, "no fault dropped the connection: the soak did not test reconnecting"
    assert result.reconnect_p95_s <= 1.0, sorted(result.reconnects_s)
    assert result.direct_sent > 0 and result.direct_lost == 0
    assert result.queued_sent > 0 and result.queued_unaccounted == 0
    # Certified events are lost only when AVS answered them with an error (the outbox's documented choice).
    assert result.certified_sent > 0 and result.certified_lost == result.certified_refused
    assert result.observer_failures == 0
