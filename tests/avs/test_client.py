"""The AVS client against the running emulator: real TLS, real HTTP/2, loopback sockets, no mocked transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from avsd.avs.client import ConnectionSettings, ConnectionState
from avsd.avs.messages import Directive, Event
from avsd.emulator.faults import Fault, FaultKind, FaultTarget
from avsd.emulator.scenario import DirectiveSpec, Rule
from avsd.emulator.server import Emulator
from avsd.errors import AvsServerError, NotConnectedError
from tests.avs.conftest import connected_device

FRAME = 320


def _recognize(profile: str = "CLOSE_TALK") -> Event:
    return Event.new(
        "SpeechRecognizer",
        "Recognize",
        {"profile": profile, "format": "AUDIO_L16_RATE_16000_CHANNELS_1", "initiator": {"type": "TAP", "payload": {}}},
        dialog_request_id="dialog-1",
    )


async def test_connect_opens_downchannel_then_synchronizes_state_with_context(
    tmp_path: Path, emulator: Emulator
) -> None:
    async with connected_device(tmp_path, emulator) as device:
        assert device.client.state is ConnectionState.CONNECTED
        paths = [(r.method, r.path) for r in emulator.records]
        downchannel = paths.index(("GET", "/v20160207/directives"))
        sync = next(r for r in emulator.records if r.qualified_name == "System.SynchronizeState")
        assert downchannel < emulator.records.index(sync)
        assert sync.event is not None
        assert sync.event["context"] == [
            {"header": {"namespace": "SpeechRecognizer", "name": "RecognizerState"}, "payload": {"wakeword": "ALEXA"}}
        ]
        assert sync.status == 204
        assert device.states[:2] == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
        # The token never appears in what the server recorded.
        assert all("Atza" not in str(r.headers) for r in emulator.records)


async def test_recognize_audio_arrives_byte_exact_while_still_being_produced(
    tmp_path: Path, emulator: Emulator
) -> None:
    emulator.add_rule(Rule(match="SpeechRecognizer.Recognize", status=204))
    frames = [bytes([i % 256]) * FRAME for i in range(60)]
    seen_while_producing: list[int] = []

    async with connected_device(tmp_path, emulator) as device:

        async def audio() -> AsyncIterator[bytes]:
            for i, frame in enumerate(frames):
                yield frame
                await asyncio.sleep(0.005)
                if i == 30:
                    record = await emulator.wait_for_event("SpeechRecognizer.Recognize", timeout=2)
                    seen_while_producing.append(len(record.audio))

        result = await device.client.send_event(_recognize(), audio=audio())
        record = await emulator.wait_for_event("SpeechRecognizer.Recognize")
        await asyncio.wait_for(record.body_complete.wait(), 2)
    assert result.status == 204
    assert bytes(record.audio) == b"".join(frames)
    # Half way through producing, the server already held most of what had been produced.
    assert seen_while_producing and seen_while_producing[0] >= 25 * FRAME


async def test_speak_attachment_is_readable_before_it_has_fully_arrived(tmp_path: Path, emulator: Emulator) -> None:
    emulator.add_rule(
        Rule(
            match="SpeechRecognizer.Recognize",
            directives=(DirectiveSpec("SpeechSynthesizer", "Speak", speech="Streaming replies start playing early."),),
        )
    )
    emulator.inject(Fault(FaultKind.TRICKLE, chunk_bytes=2048, interval_ms=20))
    async with connected_device(tmp_path, emulator) as device:
        send = asyncio.create_task(device.client.send_event(_recognize(), audio=_one_frame()))
        speak = await device.directive("SpeechSynthesizer.Speak")
        content_id = speak.payload["url"].removeprefix("cid:")
        attachment = device.client.attachments.get(content_id)
        first = await asyncio.wait_for(anext(aiter(attachment)), 5)
        assert first and not attachment.done, "first bytes were exposed only after the whole part arrived"
        result = await asyncio.wait_for(send, 20)
        mp3 = await attachment.read_all()
    assert len(mp3) > 4 * 2048 and mp3.startswith(first)
    assert speak.payload["format"] == "AUDIO_MPEG" and speak.payload["token"]
    assert [d.qualified_name for d in result.directives] == ["SpeechSynthesizer.Speak"]


async def test_stop_capture_arrives_on_the_downchannel_mid_upload(
    tmp_path: Path, emulator: Emulator, speech_frames: list[bytes]
) -> None:
    async with connected_device(tmp_path, emulator) as device:
        stop_seen = asyncio.Event()
        device.client.directive_observers.add(
            lambda d: stop_seen.set() if d.qualified_name == "SpeechRecognizer.StopCapture" else None
        )
        sent_after_stop = 0

        async def audio() -> AsyncIterator[bytes]:
            nonlocal sent_after_stop
            for frame in speech_frames + [b"\0" * FRAME] * 500:  # speech then 5 s of silence at most
                if stop_seen.is_set():
                    return  # the device ends the upload when StopCapture arrives
                yield frame
                await asyncio.sleep(0.002)

        result = await device.client.send_event(_recognize("NEAR_FIELD"), audio=audio())
        stop = next(d for d in device.directives if d.qualified_name == "SpeechRecognizer.StopCapture")
    assert stop.dialog_request_id is None
    assert stop_seen.is_set()
    assert [d.qualified_name for d in result.directives] == ["SpeechSynthesizer.Speak"]


async def test_ping_after_idle(tmp_path: Path, emulator: Emulator) -> None:
    settings = ConnectionSettings(ping_idle_s=0.3, ping_timeout_s=2)
    async with connected_device(tmp_path, emulator, settings) as device:
        await asyncio.sleep(1.0)
        pings = [r for r in emulator.records if r.path == "/ping"]
        assert 2 <= len(pings) <= 4
        assert all(r.status == 204 for r in pings)
        assert device.client.connect_count == 1


async def test_unanswered_ping_reconnects(tmp_path: Path, emulator: Emulator) -> None:
    settings = ConnectionSettings(ping_idle_s=0.2, ping_timeout_s=0.3)
    async with connected_device(tmp_path, emulator, settings) as device:
        emulator.inject(Fault(FaultKind.NO_PING_ANSWER))
        await device.connected_times(2)
        assert ConnectionState.WAITING_TO_RETRY in device.states


async def test_token_is_refreshed_ahead_of_expiry(tmp_path: Path) -> None:
    async with Emulator(cert_dir=tmp_path / "certs", access_token_lifetime_s=1.0) as emulator:
        settings = ConnectionSettings(ping_idle_s=0.2)
        async with connected_device(tmp_path, emulator, settings) as device:
            device.tokens._refresh_ahead_s = 0.5
            await asyncio.sleep(1.5)
            assert device.tokens.refresh_count >= 2
            assert device.client.connect_count == 1, "a token refresh must not drop the connection"
            assert all(r.status != 403 for r in emulator.records)


async def test_403_refreshes_the_token_and_reconnects(tmp_path: Path, emulator: Emulator) -> None:
    async with connected_device(tmp_path, emulator) as device:
        refreshes = device.tokens.refresh_count
        emulator.lwa.expire_access_tokens()
        with pytest.raises(AvsServerError) as info:
            await device.client.send_event(Event.new("Speaker", "VolumeChanged", {"volume": 5, "muted": False}))
        assert info.value.status == 403
        assert info.value.exception_code == "UNAUTHORIZED_REQUEST_EXCEPTION"
        await device.connected_times(2)
        assert device.tokens.refresh_count == refreshes + 1
        result = await device.client.send_event(Event.new("Speaker", "VolumeChanged", {"volume": 5, "muted": False}))
        assert result.status == 204


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "INVALID_REQUEST_EXCEPTION"),
        (429, "THROTTLING_EXCEPTION"),
        (500, "INTERNAL_SERVICE_EXCEPTION"),
        (503, "N/A"),
    ],
)
async def test_error_status_becomes_a_typed_error(tmp_path: Path, emulator: Emulator, status: int, code: str) -> None:
    async with connected_device(tmp_path, emulator) as device:
        emulator.inject(Fault(FaultKind.STATUS, status=status))
        with pytest.raises(AvsServerError) as info:
            await device.client.send_event(Event.new("Alerts", "SetAlertSucceeded", {"token": "x"}))
        assert (info.value.status, info.value.exception_code) == (status, code)
        assert device.client.state is ConnectionState.CONNECTED
        ok = await device.client.send_event(Event.new("Alerts", "SetAlertSucceeded", {"token": "x"}))
        assert ok.status == 204


async def test_events_refused_while_not_connected(tmp_path: Path, emulator: Emulator) -> None:
    async with connected_device(tmp_path, emulator, start=False) as device:
        with pytest.raises(NotConnectedError):
            await device.client.send_event(Event.new("System", "UserInactivityReport", {"inactiveTimeInSeconds": 1}))


async def test_pushed_directive_and_unparseable_one(tmp_path: Path, emulator: Emulator) -> None:
    async with connected_device(tmp_path, emulator) as device:
        await emulator.push_directive(Directive.new("Speaker", "SetVolume", {"volume": 30}))
        directive = await device.directive("Speaker.SetVolume")
        assert directive.payload == {"volume": 30}
        emulator.inject(Fault(FaultKind.MALFORMED_JSON, target=FaultTarget.DOWNCHANNEL))
        await emulator.push_directive(Directive.new("Speaker", "SetMute", {"mute": True}))
        record = await emulator.wait_for_event("System.ExceptionEncountered")
        assert record.event is not None
        assert record.event["event"]["payload"]["error"]["type"] == "UNEXPECTED_INFORMATION_RECEIVED"
        assert device.client.connect_count == 1


FAULTS_THAT_DROP_THE_CONNECTION = [
    Fault(FaultKind.CLOSE_DOWNCHANNEL),
    Fault(FaultKind.GOAWAY),
    Fault(FaultKind.RST_STREAM, target=FaultTarget.DOWNCHANNEL),
    Fault(FaultKind.MALFORMED_MULTIPART, target=FaultTarget.DOWNCHANNEL),
]


@pytest.mark.parametrize("fault", FAULTS_THAT_DROP_THE_CONNECTION, ids=lambda f: f"{f.kind}-{f.target}")
async def test_connection_faults_are_followed_by_a_working_reconnect(
    tmp_path: Path, emulator: Emulator, fault: Fault
) -> None:
    async with connected_device(tmp_path, emulator) as device:
        emulator.inject(fault)
        if fault.target is FaultTarget.DOWNCHANNEL and fault.kind is FaultKind.MALFORMED_MULTIPART:
            await emulator.push_directive(Directive.new("Speaker", "SetVolume", {"volume": 1}))
        await device.connected_times(2)
        result = await device.client.send_event(Event.new("Speaker", "VolumeChanged", {"volume": 5, "muted": False}))
        assert result.status == 204
        assert emulator.downchannel_count >= 2


FAULTS_ON_ONE_EVENT = [
    Fault(FaultKind.RST_STREAM),
    Fault(FaultKind.MALFORMED_MULTIPART),
    Fault(FaultKind.STALL, seconds=1.0),
    Fault(FaultKind.TRICKLE, chunk_bytes=101, interval_ms=1),
]


@pytest.mark.parametrize("fault", FAULTS_ON_ONE_EVENT, ids=lambda f: str(f.kind))
async def test_faults_on_one_event_leave_the_connection_usable(
    tmp_path: Path, emulator: Emulator, fault: Fault
) -> None:
    settings = ConnectionSettings(event_timeout_s=0.5)
    async with connected_device(tmp_path, emulator, settings) as device:
        emulator.inject(fault)
        started = time.monotonic()
        try:
            await device.client.send_event(_recognize(), audio=_one_frame())
        except Exception as exc:  # each fault may legitimately surface as an error of the avsd tree
            from avsd.errors import AvsError

            assert isinstance(exc, AvsError), f"{type(exc).__name__} escaped the error boundary"
        assert time.monotonic() - started < 5
        await device.client.wait_connected(10)
        ok = await device.client.send_event(Event.new("Speaker", "VolumeChanged", {"volume": 5, "muted": False}))
        assert ok.status == 204


async def _one_frame() -> AsyncIterator[bytes]:
    yield b"\0" * FRAME


async def test_set_endpoint_switches_and_reconnects(tmp_path: Path, emulator: Emulator) -> None:
    async with (
        Emulator(cert_dir=tmp_path / "other", accept_any_token=True) as other,
        connected_device(tmp_path, emulator) as device,
    ):
        device.client._ssl_context.load_verify_locations(cafile=str(other.ca_file))  # trust its certificate too
        device.client.set_endpoint(other.base_url)
        await device.connected_times(2)
        assert device.client.base_url == other.base_url
        assert other.downchannel_count == 1
        assert any(r.qualified_name == "System.SynchronizeState" for r in other.records)


async def test_stopping_leaves_no_task_behind(tmp_path: Path, emulator: Emulator) -> None:
    before = {t for t in asyncio.all_tasks() if not t.done()}
    async with connected_device(tmp_path, emulator):
        pass
    await asyncio.sleep(0.05)
    leftover = [t for t in asyncio.all_tasks() if not t.done() and t not in before and t is not asyncio.current_task()]
    assert not leftover, leftover


@pytest.fixture(scope="session")
def speech_frames() -> list[bytes]:
    """Real speech ("what time is it") as 320-byte frames, from the committed fixtures."""
    from avsd.audio.wav_source import load_wav

    pcm = load_wav(Path(__file__).parents[1] / "fixtures" / "no-wake-word.wav")
    return [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]


def test_settings_defaults_match_the_protocol() -> None:
    settings = ConnectionSettings()
    assert (settings.ping_idle_s, settings.ping_timeout_s) == (300.0, 30.0)
    assert settings.backoff_s == (0.25, 1.0, 3.0, 5.0, 10.0, 20.0)
    assert replace(settings, endpoint="EU").endpoint == "EU"
