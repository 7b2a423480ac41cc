"""Notifications: SetIndicator / ClearIndicator pushed by the emulator over HTTP/2 -> the indicator flag (LED
input), the sound on the notification player (the asset, or the built-in chime when the asset is dead), the
IndicatorState context, and persistence across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from avsd.avs.messages import Directive
from tests.agents.media_server import MediaServer, closed_port, tone_mp3, wav_samples
from tests.harness import Device, running_device


def set_indicator(url: str | None, *, persist: bool = True, audio: bool = True) -> Directive:
    payload: dict[str, object] = {"persistVisualIndicator": persist, "playAudioIndicator": audio}
    if url is not None:
        payload["asset"] = {"assetId": "a1", "url": url}
    return Directive.new("Notifications", "SetIndicator", payload)


def sounds(device: Device) -> list[Path]:
    return sorted(device.out_dir.glob("notification-*.wav"), key=lambda p: int(p.stem.split("-")[1]))


async def until(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_set_and_clear_indicator_with_sounds_context_and_restart(tmp_path: Path) -> None:
    server = MediaServer()
    asset = server.add("/ding.mp3", tone_mp3(0.5))
    seen: list[bool] = []
    with server.running():
        async with running_device(tmp_path) as device:
            notifications = device.daemon.notifications
            notifications.add_observer(seen.append)
            await device.emulator.push_directive(set_indicator(asset))
            await until(lambda: notifications.sounds_played == [asset])
            # A dead asset: the built-in chime plays instead.
            await device.emulator.push_directive(set_indicator(f"http://127.0.0.1:{closed_port()}/x.mp3",
                                                               persist=False))
            await until(lambda: len(notifications.sounds_played) == 2)
            on_context = notifications.context()["payload"]
    assert notifications.sounds_played == [asset, "chime"]
    assert seen == [True] and notifications.indicator_on
    assert on_context == {"isEnabled": True, "isVisualIndicatorPersisted": True}
    durations = [len(wav_samples(p)[1]) / wav_samples(p)[0] for p in sounds(device)]
    assert len(durations) == 2 and abs(durations[0] - 0.5) < 0.1 and 0.2 < durations[1] < 0.5
    # Restart: the indicator is still on, in the first SynchronizeState; then ClearIndicator turns it off.
    async with running_device(tmp_path) as device:
        sync = await device.emulator.wait_for_event("System.SynchronizeState")
        notifications = device.daemon.notifications
        assert notifications.indicator_on
        await device.emulator.push_directive(Directive.new("Notifications", "ClearIndicator", {}))
        await until(lambda: not notifications.indicator_on)
        off_context = notifications.context()["payload"]
    states = {c["header"]["name"]: c["payload"] for c in sync.event["context"]}
    assert states["IndicatorState"] == {"isEnabled": True, "isVisualIndicatorPersisted": True}
    assert off_context == {"isEnabled": False, "isVisualIndicatorPersisted": False}
    assert '"indicator": false' in (tmp_path / "state" / "notifications.json").read_text()
