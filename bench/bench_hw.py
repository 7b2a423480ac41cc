"""Benchmarks for the appliance layer: LED pattern sampling and APA102 encoding (25 times a second while an
animation shows), sd_notify datagrams (every watchdog interval), and button edge -> action latency on
MockFactory.

Targets are for the development machine; a Raspberry Pi core is roughly 10-20x slower. At 25 fps a 12-pixel
frame costing 20 us here is about 0.5-1 % of a Pi Zero 2 W core.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import tempfile
import time
from typing import Any

from avsd.hw.button import ButtonAction, ButtonSettings, GpioButton
from avsd.hw.factory import pin_factory_for
from avsd.hw.leds import apa102_words
from avsd.hw.patterns import PATTERNS, LedInputs, LedPattern, frame_at, pattern_for
from avsd.state import DialogState
from avsd.systemd import SystemdNotifier


def _frames() -> list[dict[str, object]]:
    spin = PATTERNS[LedPattern.THINKING]
    n = 50_000
    t0 = time.perf_counter()
    for i in range(n):
        frame_at(spin, i * 0.04, 12)
    frame_us = (time.perf_counter() - t0) / n * 1e6
    frame = frame_at(spin, 0.1, 12)
    t0 = time.perf_counter()
    for _ in range(n):
        apa102_words(frame, 16)
    encode_us = (time.perf_counter() - t0) / n * 1e6
    inputs = LedInputs(DialogState.SPEAKING, connected=True, notification_waiting=True)
    t0 = time.perf_counter()
    for _ in range(n):
        pattern_for(inputs)
    table_us = (time.perf_counter() - t0) / n * 1e6
    return [
        {"metric": "led_frame_at_12px_us", "value": round(frame_us, 2), "unit": "us", "target": "<= 20"},
        {"metric": "apa102_encode_12px_us", "value": round(encode_us, 2), "unit": "us", "target": "<= 20"},
        {"metric": "led_pattern_for_us", "value": round(table_us, 3), "unit": "us", "target": "<= 2"},
    ]


def _notify() -> dict[str, object]:
    directory = tempfile.mkdtemp(prefix="avsd-bench-")
    path = os.path.join(directory, "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
        n = 2000
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            notifier.watchdog()
            samples.append(time.perf_counter() - t0)
            server.recv(64)
        p50 = statistics.median(samples) * 1e6
    finally:
        server.close()
        shutil.rmtree(directory)
    return {"metric": "sd_notify_watchdog_p50_us", "value": round(p50, 1), "unit": "us", "target": "<= 200"}


async def _button_latency() -> dict[str, object]:
    """Release edge -> TAP callback, minus the debounce window (which is deliberate latency)."""
    factory: Any = pin_factory_for("mock")
    settings = ButtonSettings(pin=17, bounce_s=0.01, hold_s=0.5, long_press_s=2.0)
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[float] = asyncio.Queue(maxsize=1)

    def on_action(action: ButtonAction) -> None:
        if action is ButtonAction.TAP:
            got.put_nowait(time.monotonic())

    button = GpioButton(settings, on_action, loop=loop, pin_factory=factory)
    pin = factory.pin(17)
    samples = []
    try:
        for _ in range(30):
            pin.drive_low()
            await asyncio.sleep(0.02)
            t0 = time.monotonic()
            pin.drive_high()
            async with asyncio.timeout(2):
                t1 = await got.get()
            samples.append(t1 - t0 - settings.bounce_s)
            await asyncio.sleep(0.005)
    finally:
        button.close()
        factory.close()
    p50 = statistics.median(samples) * 1e3
    return {"metric": "button_release_to_tap_p50_ms", "value": round(p50, 2), "unit": "ms", "target": "<= 5"}


def run() -> list[dict[str, object]]:
    rows = _frames()
    rows.append(_notify())
    rows.append(asyncio.run(_button_latency()))
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
