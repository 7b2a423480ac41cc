"""The composition root (avsd/root.py) and what goes through it: reload rebuilds parts (OPUS checked, ring
resized), a headless session captures the reply instead of playing it, and a dialog that fails with anything
(not only an AvsError) returns the device to IDLE at once (issue 8, defect 1)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import avsd.root
from avsd.audio.frames import SAMPLE_RATE
from avsd.audio.opus import OPUS_FORMAT, OpusUnavailableError
from avsd.avs.messages import Event
from avsd.config import defaults_toml, override
from avsd.main import Reloader
from avsd.playback.pcm import CapturePlayer
from avsd.state import DialogState as S
from tests.harness import Device, fixture_pcm, running_device


async def tap_dialog(device: Device, pcm: bytes) -> None:
    await device.source.feed_silence(0.3)
    await device.source.drained()
    device.daemon.dialog.tap()
    await device.source.feed(pcm)
    await device.source.feed_silence(1.5)


def write_config(path: Path, config: Any) -> Path:
    path.write_text(defaults_toml(config), encoding="utf-8")
    return path


async def test_reload_to_opus_checks_libopus_resizes_the_ring_and_the_next_dialog_is_opus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[bool] = []
    real_require = avsd.root.require_opus

    def recording_require() -> None:
        checked.append(True)
        real_require()

    monkeypatch.setattr(avsd.root, "require_opus", recording_require)
    async with asyncio.timeout(60), running_device(tmp_path, stop_capture=False) as device:
        daemon = device.daemon
        await device.source.feed_silence(3.0)
        await device.source.drained()
        old_ring, old_engine = daemon.dialog.ring, daemon.dialog.engine
        assert old_ring.capacity_samples == 2.5 * SAMPLE_RATE
        end, tail = old_ring.end_index, old_ring.read_from(old_ring.end_index - SAMPLE_RATE)
        new = override(override(daemon.config, "dialog.audio_format", OPUS_FORMAT), "dialog.preroll_s", 1.5)
        reloader = Reloader(daemon, None, write_config(tmp_path / "avsd.toml", new), asyncio.get_running_loop())
        await reloader()
        assert checked == [True]  # the same check a start does
        assert daemon.config.dialog.audio_format == OPUS_FORMAT and daemon.dialog.settings.preroll_s == 1.5
        ring = daemon.dialog.ring
        assert ring is not old_ring and ring.capacity_samples == 3.5 * SAMPLE_RATE
        assert ring.end_index == end and ring.read_from(end - SAMPLE_RATE) == tail  # history and indices kept
        assert daemon.dialog.engine is old_engine  # wake settings unchanged: the engine is kept, not rebuilt

        await tap_dialog(device, fixture_pcm("no-wake-word"))
        record = await device.emulator.wait_for_event("SpeechRecognizer.Recognize", timeout=15)
        await device.settle()
    assert record.event is not None and record.event["event"]["payload"]["format"] == OPUS_FORMAT


async def test_reload_to_opus_without_libopus_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> None:
        raise OpusUnavailableError("dialog.audio_format", "OPUS needs libopus (test: not installed)")

    monkeypatch.setattr(avsd.root, "require_opus", missing)
    async with asyncio.timeout(30), running_device(tmp_path) as device:
        daemon = device.daemon
        before_config, before_pipeline, before_ring = daemon.config, daemon.dialog.pipeline, daemon.dialog.ring
        new = override(override(daemon.config, "dialog.audio_format", OPUS_FORMAT), "dialog.preroll_s", 1.5)
        reloader = Reloader(daemon, None, write_config(tmp_path / "avsd.toml", new), asyncio.get_running_loop())
        with pytest.raises(OpusUnavailableError, match=r"dialog\.audio_format"):
            await reloader()
        assert daemon.config is before_config and reloader.reloads == 0
        assert daemon.dialog.pipeline is before_pipeline and daemon.dialog.ring is before_ring


async def test_a_wake_reload_rebuilds_the_engine_through_the_root(tmp_path: Path) -> None:
    async with asyncio.timeout(30), running_device(tmp_path) as device:
        daemon = device.daemon
        old_engine = daemon.dialog.engine
        new = override(daemon.config, "wake.engine", "none")
        await Reloader(daemon, None, write_config(tmp_path / "avsd.toml", new), asyncio.get_running_loop())()
        assert daemon.dialog.engine is not old_engine and daemon.dialog.engine.name == "none"


async def test_a_headless_session_captures_the_reply_instead_of_playing_it(tmp_path: Path) -> None:
    async with asyncio.timeout(60), running_device(tmp_path, headless=True) as device:
        daemon = device.daemon
        players = daemon.parts.players
        assert all(isinstance(p, CapturePlayer) for p in players.all())
        assert daemon.dialog.engine.name == "none"
        await tap_dialog(device, fixture_pcm("no-wake-word"))
        await device.wait_state(S.SPEAKING, 15)
        await device.settle()
        speech = players.speech
        assert isinstance(speech, CapturePlayer)
        ((_name, pcm),) = speech.captured
        seconds = len(pcm) / (2 * speech.fmt.channels * speech.fmt.rate)
        assert seconds > 0.5, seconds  # the emulator's espeak-ng answer, decoded
        assert max(abs(int.from_bytes(pcm[i : i + 2], "little", signed=True)) for i in range(0, 20000, 2)) > 100
    assert device.replies() == []  # nothing was written or played


class _ConsumedAfterUpload:
    """The AVS client as defect 1 met it: the upload completes, then httpx raises StreamConsumed (a RuntimeError,
    not an httpx.HTTPError and so not an AvsError) instead of returning the answer."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.uploaded = 0

    async def send_event(self, event: Event, audio: AsyncIterator[bytes] | None = None) -> Any:
        if event.header.name != "Recognize" or audio is None:
            return await self.real.send_event(event, audio)
        async for frame in audio:
            self.uploaded += len(frame)
        raise httpx.StreamConsumed()


async def test_a_dialog_failing_with_a_non_avs_error_returns_to_idle_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="avsd.dialog")
    async with asyncio.timeout(30), running_device(tmp_path) as device:  # thinking_s: the default 10 s
        dialog = device.daemon.dialog
        client = _ConsumedAfterUpload(dialog._client)
        dialog._client = client  # the one collaborator replaced: the failure has to come from somewhere
        await tap_dialog(device, fixture_pcm("no-wake-word"))
        thinking = await device.wait_state(S.THINKING, 10)
        idle = await device.wait_state(S.IDLE, 5, after=device.transitions.index(thinking))
        assert idle.trigger.value == "failed"
        assert idle.time - thinking.time < 1.0, idle.time - thinking.time  # not the 10 s thinking timeout
        assert client.uploaded > 0 and not dialog.has_dialog
        assert "failed" in caplog.text and "StreamConsumed" in caplog.text
        assert device.daemon.connected()  # nothing else was affected
