"""avsd.AsyncClient / the headless session against the local AVS server over real HTTP/2 + TLS on loopback."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import avsd
from avsd.avs.client import REGIONS, ConnectionSettings, ConnectionState
from avsd.avs.credentials import Credentials, save_credentials
from avsd.client import NEAR_FIELD, OPUS, AsyncClient, token_url_for
from avsd.emulator.faults import Fault, FaultKind
from avsd.emulator.scenario import DirectiveSpec, Rule, Scenario, load_scenario
from avsd.emulator.server import Emulator
from avsd.errors import AuthError, AvsConnectionError, AvsdError, AvsServerError
from avsd.root import build_headless_session
from avsd.session_audio import AudioInputError, audio_chunks
from tests.harness import FIXTURES, fixture_pcm
from tests.library_helpers import mp3_seconds, thinking_emulator

WAV = FIXTURES / "alexa-what-time-is-it.wav"
REPO = Path(__file__).parent.parent
RECOGNIZE = "SpeechRecognizer.Recognize"


def client_for(emulator: Emulator, **kwargs: object) -> AsyncClient:
    return AsyncClient(
        "avsd-test", None, emulator.refresh_token, emulator.base_url, ca_file=emulator.ca_file, **kwargs  # type: ignore[arg-type]
    )


def recognizes(emulator: Emulator) -> list:  # type: ignore[type-arg]
    return [r for r in emulator.records if r.qualified_name == RECOGNIZE]


async def test_file_is_streamed_and_speak_audio_comes_back_as_mp3() -> None:
    async with asyncio.timeout(30), Emulator() as emu, client_for(emu) as client:
        with WAV.open("rb") as f:
            directives = await client.send_audio_file(f)
        assert [d.name for d in directives] == ["Speak"]
        speak = directives[0]
        assert speak.namespace == "SpeechSynthesizer" and speak.dialog_request_id
        assert speak.audio_attachment is not None and mp3_seconds(speak.audio_attachment) > 0.5
        (record,) = recognizes(emu)
        # The server got exactly the samples (the WAV header was skipped, nothing lost or added).
        assert bytes(record.audio) == fixture_pcm("alexa-what-time-is-it")
        assert record.event is not None
        header, payload = record.event["event"]["header"], record.event["event"]["payload"]
        assert header["dialogRequestId"] == speak.dialog_request_id
        assert payload["profile"] == "CLOSE_TALK" and payload["format"] == "AUDIO_L16_RATE_16000_CHANNELS_1"
        assert {c["header"]["namespace"] for c in record.event["context"]} >= {"SpeechRecognizer", "AudioPlayer"}


async def test_growing_bytesio_fed_by_a_thread_at_real_time_pace() -> None:
    pcm = fixture_pcm("alexa-what-time-is-it") + bytes(3200 * 3)  # speech + 300 ms silence
    buffer = io.BytesIO()
    written: list[float] = []

    def microphone() -> None:
        for offset in range(0, len(pcm), 320):  # 10 ms blocks at real-time pace
            buffer.write(pcm[offset : offset + 320])
            time.sleep(0.01)
        written.append(time.monotonic())
        time.sleep(0.05)
        buffer.close()

    async with asyncio.timeout(30), Emulator() as emu, client_for(emu) as client:
        thread = threading.Thread(target=microphone)
        started = time.monotonic()
        thread.start()
        reply = await client.ask(buffer)
        thread.join()
        (record,) = recognizes(emu)
    assert reply.speech and mp3_seconds(reply.speech) > 0.5
    # Streamed while it grew: the first audio reached the server long before the "microphone" stopped...
    first_arrival = record.audio_chunks[0][0]
    assert first_arrival - record.time < 0.5
    assert written[0] - started > len(pcm) / 32000 * 0.9
    # ... and everything written reached it, in order (the 50 ms before close() let the last poll run).
    assert bytes(record.audio) == pcm


async def test_opus_upload_is_encoded_and_decodes_to_the_input() -> None:
    pytest.importorskip("opuslib_next", reason="Opus needs opuslib-next + libopus0")
    pcm = fixture_pcm("alexa-what-time-is-it")
    async with asyncio.timeout(30), Emulator() as emu, client_for(emu) as client:
        directives = await client.send_audio_file(io.BytesIO(pcm), audio_format=OPUS)
        (record,) = recognizes(emu)
    assert [d.name for d in directives] == ["Speak"]
    assert record.audio_format == "OPUS" and record.opus_packet_bytes == 80
    assert len(record.encoded_audio) == 80 * -(-len(pcm) // 640)  # one 80-byte packet per 20 ms, last padded
    assert abs(len(record.audio) - len(pcm)) <= 640


async def test_multi_step_dialog_answers_expect_speech_with_the_same_dialog_request_id() -> None:
    scenario = load_scenario(REPO / "config" / "scenarios" / "multi-turn.toml")
    async with asyncio.timeout(30), Emulator(scenario=scenario) as emu, client_for(emu) as client:
        first = await client.ask(WAV.read_bytes())
        assert first.expects_speech and [d.name for d in first.directives] == ["Speak", "ExpectSpeech"]
        second = await client.ask(fixture_pcm("alexa"), dialog_request_id=first.dialog_request_id)
        one, two = recognizes(emu)
    assert second.dialog_request_id == first.dialog_request_id
    assert not second.expects_speech
    assert [d.qualified_name for d in second.directives] == ["SpeechSynthesizer.Speak", "Alerts.SetAlert"]
    assert two.event is not None and one.event is not None
    assert two.event["event"]["header"]["dialogRequestId"] == first.dialog_request_id
    # The follow-up Recognize echoes ExpectSpeech's initiator verbatim (§6.1).
    assert two.event["event"]["payload"]["initiator"] == first.expect_speech["initiator"]  # type: ignore[index]
    assert one.event["event"]["payload"]["initiator"]["type"] == "PRESS_AND_HOLD"


async def test_ten_concurrent_asks_share_one_connection_and_overlap() -> None:
    # The server on its own loop in a thread, as a remote one: on one shared loop the uploads finish before the
    # server reads anything, which hid an httpcore flow-control stall (see avsd/avs/transport.py).
    emu, handler = thinking_emulator(1.0, reply_text="It is noon.")  # one text: its MP3 is made once
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(emu.start(), loop).result(10)
    pcm = fixture_pcm("alexa-what-time-is-it")
    try:
        async with asyncio.timeout(40), client_for(emu) as client:
            started = time.monotonic()
            await client.ask(pcm)
            one = time.monotonic() - started
            started = time.monotonic()
            eight = await asyncio.gather(*(client.ask(pcm) for _ in range(8)))
            wall_8 = time.monotonic() - started
            assert handler.max_in_flight == 8
            replies = await asyncio.gather(*(client.ask(pcm) for _ in range(10)))
    finally:
        asyncio.run_coroutine_threadsafe(emu.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    assert all(r.speech for r in [*eight, *replies])
    assert len({r.dialog_request_id for r in replies}) == 10
    assert len({r.connection_id for r in emu.records if r.path.startswith("/v2")}) == 1
    assert emu.downchannel_count == 1 and len(recognizes(emu)) == 19
    # Eight at once (the client's cap: AVS allows 10 streams, 2 kept for the downchannel and a ping) take about as
    # long as one (bench: 1.1x; the bound leaves room for a loaded machine; stalled uploads took 4-6x); never more
    # than 8 were in flight at the server.
    assert wall_8 < 2.5 * one
    assert handler.max_in_flight == 8


async def test_bad_credentials_raise_auth_error_with_the_reason() -> None:
    async with asyncio.timeout(20), Emulator() as emu:
        client = AsyncClient("avsd-test", None, "Atzr|not-the-token", emu.base_url, ca_file=emu.ca_file)
        with pytest.raises(AuthError) as info:
            await client.connect()
        await client.close()
    assert info.value.error == "invalid_grant"
    assert "refresh token is invalid" in str(info.value)
    assert "not-the-token" not in str(info.value)


async def test_server_500_is_avs_server_error_and_the_client_carries_on() -> None:
    async with asyncio.timeout(30), Emulator() as emu, client_for(emu) as client:
        emu.inject(Fault(FaultKind.STATUS, status=500, match=RECOGNIZE))
        with pytest.raises(AvsServerError) as info:
            await client.ask(fixture_pcm("alexa"))
        assert info.value.status == 500 and info.value.exception_code == "INTERNAL_SERVICE_EXCEPTION"
        reply = await client.ask(fixture_pcm("alexa"))
    assert reply.speech


async def test_stalled_server_times_out_with_an_avsd_error_not_a_hang() -> None:
    async with asyncio.timeout(30), Emulator() as emu, client_for(emu, timeout=1.0) as client:
        emu.inject(Fault(FaultKind.STALL, seconds=20.0, match=RECOGNIZE))
        started = time.monotonic()
        with pytest.raises(AvsConnectionError) as info:
            await client.ask(fixture_pcm("alexa"))
        assert time.monotonic() - started < 5.0
        assert "timed out" in str(info.value) and not isinstance(info.value, httpx.HTTPError)
        reply = await client.ask(fixture_pcm("alexa"))  # the connection is still good
    assert reply.speech


async def test_close_while_a_request_is_in_flight() -> None:
    async def endless() -> AsyncIterator[bytes]:  # a microphone nobody stops
        while True:
            yield bytes(320)
            await asyncio.sleep(0.01)

    async with asyncio.timeout(30), Emulator() as emu:
        client = client_for(emu)
        await client.connect()
        ask = asyncio.create_task(client.ask(endless()))
        await emu.wait_for_event(RECOGNIZE, timeout=5.0)
        started = time.monotonic()
        await client.close()
        with pytest.raises(AvsdError) as info:
            await ask
        assert time.monotonic() - started < 5.0
    assert isinstance(info.value, AvsConnectionError)


async def test_no_credentials_for_a_local_server_that_accepts_any_token() -> None:
    async with asyncio.timeout(30), Emulator(accept_any_token=True) as emu:
        async with AsyncClient(base_url=emu.base_url, ca_file=emu.ca_file) as client:
            reply = await client.ask_text("what time is it")
            await client.ping()
        (record,) = recognizes(emu)
    assert reply.speech and len(record.audio) > 16000  # espeak-ng said something, converted to 16 kHz


async def test_credentials_from_avsd_credentials_file(tmp_path: Path) -> None:
    async with asyncio.timeout(30), Emulator() as emu:
        path = tmp_path / "credentials.json"
        save_credentials(path, Credentials("avsd-test", emu.refresh_token))
        async with avsd.AsyncClient.from_credentials_file(path, emu.base_url, ca_file=emu.ca_file) as client:
            reply = await client.ask(fixture_pcm("alexa"), distance_profile=NEAR_FIELD)
    assert reply.speech


def test_region_presets_and_token_urls() -> None:
    assert AsyncClient(base_url="EU").base_url == REGIONS["EU"]
    assert AsyncClient(base_url="fe").base_url == REGIONS["FE"]
    assert AsyncClient().base_url == REGIONS["NA"]
    assert AsyncClient(base_url="https://example.test:8443/").base_url == "https://example.test:8443"
    assert token_url_for("EU") == "https://api.amazon.com/auth/o2/token"
    assert token_url_for("https://127.0.0.1:8443") == "https://127.0.0.1:8443/auth/o2/token"


async def test_a_wav_that_is_not_16k_mono_is_refused(tmp_path: Path) -> None:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(44100)
        wav.writeframes(bytes(4410 * 4))
    with pytest.raises(AudioInputError, match="44100 Hz"):
        async for _ in audio_chunks(out.getvalue(), "AUDIO_L16_RATE_16000_CHANNELS_1", [0]):
            pass


async def test_unanswered_expect_speech_sends_expect_speech_timed_out() -> None:
    expect = DirectiveSpec("SpeechRecognizer", "ExpectSpeech", {"timeoutInMilliseconds": 300})
    speak = DirectiveSpec("SpeechSynthesizer", "Speak", speech="Yes?")
    rule = Rule(match=RECOGNIZE, times=1, directives=(speak, expect))
    async with asyncio.timeout(30), Emulator(scenario=Scenario(rules=(rule,))) as emu, client_for(emu) as client:
        reply = await client.ask(fixture_pcm("alexa"))
        assert reply.expects_speech
        timed_out = await emu.wait_for_event("SpeechRecognizer.ExpectSpeechTimedOut", timeout=5.0)
        assert timed_out.event is not None and "dialogRequestId" not in timed_out.event["event"]["header"]
        # Answered late, it is a new Recognize of that dialog, no longer echoing an initiator it no longer has.
        await client.ask(fixture_pcm("alexa"), dialog_request_id=reply.dialog_request_id)
        last = recognizes(emu)[-1]
    assert last.event is not None and last.event["event"]["payload"]["initiator"]["type"] == "PRESS_AND_HOLD"


async def test_expect_speech_timeout_can_wait_for_the_reply_to_have_played() -> None:
    """``expect_timer=False`` (the phone bridge plays replies itself): the timeout runs from ``listening`` until
    ``answering``; ``end_dialog`` forgets the ExpectSpeech without a word to AVS."""
    expect = DirectiveSpec("SpeechRecognizer", "ExpectSpeech", {
        "timeoutInMilliseconds": 300, "initiator": {"type": "EXPECT_SPEECH", "payload": {"token": "t1"}}})
    speak = DirectiveSpec("SpeechSynthesizer", "Speak", speech="Yes?")
    rule = Rule(match=RECOGNIZE, times=3, directives=(speak, expect))
    timed_out = "SpeechRecognizer.ExpectSpeechTimedOut"
    async with asyncio.timeout(40), Emulator(scenario=Scenario(rules=(rule,))) as emu:
        session = build_headless_session(
            ConnectionSettings(endpoint=emu.base_url, ca_file=str(emu.ca_file)),
            credentials=Credentials("avsd-test", emu.refresh_token), token_url=emu.base_url + "/auth/o2/token")
        async with session:
            first = await session.ask(fixture_pcm("alexa"), profile=NEAR_FIELD, expect_timer=False)
            assert first.expects_speech
            await asyncio.sleep(0.8)  # the reply is still "playing": no timeout yet
            assert not [r for r in emu.records if r.qualified_name == timed_out]
            session.listening(first.dialog_request_id)
            session.answering(first.dialog_request_id)  # the caller speaks within the timeout
            await asyncio.sleep(0.8)
            assert not [r for r in emu.records if r.qualified_name == timed_out]
            second = await session.ask(fixture_pcm("alexa"), dialog_request_id=first.dialog_request_id,
                                       profile=NEAR_FIELD, expect_timer=False)
            assert recognizes(emu)[-1].event["event"]["payload"]["initiator"] == {  # type: ignore[index]
                "type": "EXPECT_SPEECH", "payload": {"token": "t1"}}
            session.listening(second.dialog_request_id)  # played, and the caller stays silent
            await emu.wait_for_event(timed_out, timeout=5.0)
            third = await session.ask(fixture_pcm("alexa"), profile=NEAR_FIELD, expect_timer=False)
            session.end_dialog(third.dialog_request_id)  # hung up
            session.listening(third.dialog_request_id)  # nothing left to time out
            await asyncio.sleep(0.8)
            assert len([r for r in emu.records if r.qualified_name == timed_out]) == 1
            await session.ask(fixture_pcm("alexa"), dialog_request_id=third.dialog_request_id, profile=NEAR_FIELD)
            assert recognizes(emu)[-1].event["event"]["payload"]["initiator"]["type"] == "TAP"  # type: ignore[index]


async def test_a_failed_connect_leaves_nothing_running_and_can_be_retried() -> None:
    async with asyncio.timeout(40), Emulator() as emu:
        client = client_for(emu, connect_timeout=1.0)
        emu.inject(Fault(FaultKind.OFFLINE, seconds=1.0))
        back = time.monotonic() + 1.2
        with pytest.raises(AvsConnectionError, match="could not reach Login with Amazon"):
            await client.connect()
        await asyncio.sleep(back - time.monotonic())
        await client.connect()  # retried once the server is back
        assert (await client.ask(fixture_pcm("alexa"))).speech
        await client.close()
        # LWA answers but AVS does not: connect gives up after its timeout and nothing keeps retrying.
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            dead = f"https://127.0.0.1:{unused.getsockname()[1]}"
        client = AsyncClient("avsd-test", None, emu.refresh_token, dead, ca_file=emu.ca_file,
                             token_url=emu.base_url + "/auth/o2/token", connect_timeout=1.0)
        with pytest.raises(AvsConnectionError, match="could not connect to"):
            await client.connect()
        assert client.session.client.state is ConnectionState.DISCONNECTED
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "session-avs-client"]
        await client.close()
