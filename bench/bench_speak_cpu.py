"""CPU of the dialog's wait while a long Speak plays (issue 8, defect 8).

DialogController awaits ``DirectiveSequencer.idle()`` for the whole answer. The real sequencer runs a blocking
Speak (its handler holds for the Speak's duration, as SpeechSynthesizer does while the player plays) and a waiter
awaits ``idle()`` meanwhile; the metric is the loop thread's CPU time per second of Speak, % of one core. The
player's own decoding is not included: it runs whether or not anything waits.

- speak_wait_cpu_percent: the event-driven idle() (target <= 1)
- speak_wait_cpu_percent_polling_2ms: the same wait done the old way (poll every 2 ms), for comparison

Usage: python bench/bench_speak_cpu.py [SECONDS]   (default 10 s per measurement)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Collection
from typing import Any

from avsd.agents.sequencer import DirectiveSequencer
from avsd.avs.messages import Directive, Event


class HeldSpeak:
    """A SpeechSynthesizer stand-in that 'plays' each Speak for ``seconds`` (a loop timer, no polling)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def handles(self) -> Collection[tuple[str, str]]:
        return [("SpeechSynthesizer", "Speak")]

    def blocking(self, directive: Directive) -> bool:
        return True

    async def handle(self, directive: Directive) -> None:
        done = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(self.seconds, done.set_result, None)
        await done

    async def cancel(self, directive: Directive) -> None:
        return None


async def _no_exceptions(event: Event) -> None:
    return None


async def measure(seconds: float, *, polling: bool) -> float:
    sequencer = DirectiveSequencer(_no_exceptions)
    sequencer.register(HeldSpeak(seconds))
    runner = asyncio.create_task(sequencer.run())
    await sequencer.new_dialog("bench-dialog")
    sequencer.submit(Directive.new("SpeechSynthesizer", "Speak", {"token": "t"}, dialog_request_id="bench-dialog"))
    await asyncio.sleep(0)  # the Speak starts
    cpu0, wall0 = time.thread_time(), time.monotonic()
    if polling:
        while not sequencer.is_idle():  # noqa: ASYNC110 - the old implementation, measured for comparison
            await asyncio.sleep(0.002)
    else:
        await sequencer.idle()
    cpu, wall = time.thread_time() - cpu0, time.monotonic() - wall0
    await sequencer.close()
    await runner
    return cpu / wall * 100


def run(seconds: float = 10.0) -> list[dict[str, Any]]:
    event_driven = asyncio.run(measure(seconds, polling=False))
    polled = asyncio.run(measure(seconds, polling=True))
    return [
        {"metric": "speak_wait_cpu_percent", "value": round(event_driven, 3), "unit": "% of one core",
         "target": "<= 1"},
        {"metric": "speak_wait_cpu_percent_polling_2ms", "value": round(polled, 3), "unit": "% of one core",
         "target": "info (the old idle())"},
    ]


if __name__ == "__main__":
    for row in run(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0):
        print(json.dumps(row))
