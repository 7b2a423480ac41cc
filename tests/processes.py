"""Waiting for a process to end (worker processes of the speech-to-text pools)."""

from __future__ import annotations

import asyncio
import os


async def process_gone(pid: int, timeout_s: float = 5.0) -> None:
    """Return once ``pid`` no longer exists; AssertionError after ``timeout_s``."""
    for _ in range(round(timeout_s / 0.05)):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"process {pid} still running")
