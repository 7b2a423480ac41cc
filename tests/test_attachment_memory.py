"""Attachment memory, the short version of bench/bench_attachment_memory.py: the real daemon process receives a
Speak whose binary part never ends (64 MiB here, 256 MiB in the bench) over real HTTP/2 + TLS from the emulator.

Reproducer for issue 8 defect 3: the daemon's RSS grew one-for-one with the part. Now the part fails at
``attachments.max_bytes`` (2 MiB here), the Speak failure is reported (ExceptionEncountered), and the same
downchannel still delivers the next directive after the part is closed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.bench_attachment_memory import measure


async def test_a_never_ending_speak_part_is_capped_in_the_real_daemon(tmp_path: Path) -> None:
    async with asyncio.timeout(170):
        m = await measure(tmp_path, part_mib=64, max_bytes_mib=2, total_bytes_mib=6)
    growth = m["rss_peak_mib"] - m["rss_before_mib"]
    # One-for-one growth would be >= 64 MiB. Measured: cap + ~3.5 MiB (5.5 MiB with a 2 MiB cap, 9.1 MiB with
    # 8 MiB): the capped attachment plus the HTTP/2 receive path and what the allocator keeps.
    assert growth < 2 + 8, m
    assert m["reported"] == 1.0, "the failed Speak was not reported to AVS"
    assert m["survived"] == 1.0, "the connection did not survive the oversized part"
