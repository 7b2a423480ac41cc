"""End to end: phone-sim speaks Twilio's and Vonage's exact messages, paced at real time, to the bridge, which
asks the real emulator over HTTP/2 + TLS and paces the reply back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from avsd.backends import Backend, BackendSession
from avsd.config import Config
from avsd.phone.backend import call_backend
from avsd.phone.call import Utterance
from avsd.phone.settings import PhoneSettings
from avsd.phone.sim import SimResult, simulate
from avsd.web import hs256_token, twilio_sign
from tests.phone.conftest import SCENARIOS, TWILIO_TOKEN, VONAGE_SECRET, running_bridge

pytestmark = pytest.mark.timeout(90)


def _check_reply(result: SimResult) -> None:
    heard = len(result.received) / 2 / result.rate
    assert heard > 1.0, result.timeline  # the emulator's reply is several seconds of speech
    level = np.abs(np.frombuffer(bytes(result.received), dtype="<i2")).max()
    assert level > 1000  # speech, not silence or noise of a wrong codec
    assert len(result.latencies()) >= 1
    assert 0.3 < result.latencies()[0] < 3.0  # 400 ms endpointing + back-end; generous: the machine is shared
    intervals = [i for reply in result.reply_intervals() for i in reply]
    assert max(intervals) < 1.0  # no stall; the strict pacing numbers come from bench/bench_phone.py
    assert sorted(intervals)[len(intervals) // 2] == pytest.approx(0.020, abs=0.004)  # real time, not a burst


async def test_twilio_call_end_to_end(tmp_path: Path, speech: bytes) -> None:
    async with running_bridge(tmp_path) as running:
        heard: list[Utterance] = []
        running.bridge.utterance_hooks.append(heard.append)
        result = await simulate("twilio", running.url, speech, twilio_auth_token=TWILIO_TOKEN, idle_s=0.8)
        _check_reply(result)
        assert result.marks == ["reply-1"]  # our mark came back once the reply had played
        assert [u.caller for u in heard] == ["+15550100"]
        assert 1.0 < len(heard[0].pcm) / 32000 < 4.0
        recognizes = [r for r in running.emulator.records if r.qualified_name == "SpeechRecognizer.Recognize"]
        assert len(recognizes) == 1
        assert recognizes[0].event["event"]["payload"]["initiator"]["type"] == "TAP"  # type: ignore[index]
        async with asyncio.timeout(5):  # stop ends the call
            while running.bridge.calls_by_id:
                await asyncio.sleep(0.01)
        assert running.bridge.ended[-1].state == "ended"


async def test_twilio_convo_path_and_signed_upgrade(tmp_path: Path, speech: bytes) -> None:
    """A seed TwiML Bin points at /convo and Twilio signs the wss:// upgrade: accepted without our token."""
    async with running_bridge(tmp_path) as running, aiohttp.ClientSession() as http:
        wss = running.url.replace("http://", "ws://") + "/convo"
        signature = twilio_sign(TWILIO_TOKEN, wss, {})
        async with http.ws_connect(wss, headers={"X-Twilio-Signature": signature}) as ws:
            await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            await ws.send_str(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
                "streamSid": "MZ1", "accountSid": "AC1", "callSid": "CA1", "tracks": ["inbound"],
                "customParameters": {},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
            async with asyncio.timeout(5):
                while "MZ1" not in running.bridge.calls_by_id:
                    await asyncio.sleep(0.01)
            await ws.send_str(json.dumps({"event": "stop", "streamSid": "MZ1", "stop": {}}))
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)


async def test_vonage_call_end_to_end(tmp_path: Path, speech: bytes) -> None:
    async with running_bridge(tmp_path) as running:
        digits: list[tuple[str, str]] = []
        running.bridge.dtmf_hooks.append(lambda caller, digit: digits.append((caller, digit)))
        result = await simulate("vonage", running.url, speech, vonage_secret=VONAGE_SECRET, dtmf="5", idle_s=0.8)
        _check_reply(result)
        assert result.rate == 16000
        assert digits == [("+15550100", "5")]


async def test_vonage_8khz(tmp_path: Path, speech: bytes) -> None:
    async with running_bridge(tmp_path, settings=PhoneSettings(port=0, vonage_rate=8000)) as running:
        result = await simulate("vonage", running.url, speech, vonage_secret=VONAGE_SECRET, idle_s=0.8)
        _check_reply(result)
        assert result.rate == 8000


async def test_hash_key_stops_the_reply(tmp_path: Path, speech: bytes) -> None:
    async with running_bridge(tmp_path) as running:
        result = await simulate("twilio", running.url, speech, twilio_auth_token=TWILIO_TOKEN, dtmf="#",
                                idle_s=0.8)
        events = [what for _, what in result.timeline]
        assert "<- clear" in events
        assert len(result.received) / 2 / 8000 < 1.5  # the emulator's reply is ~4 s; '#' cut it short


async def test_barge_in_clears_and_asks_again(tmp_path: Path, speech: bytes) -> None:
    # Speak, wait for the reply to start, speak over it. The caller's second "Alexa" starts ~3.9 s after the first
    # ended (the recording's 1.5 s of trailing and 1.0 s of leading silence around the gap), so the reply must
    # outlast that: a fixed ~10 s one (the default reply says the time, and at some minutes it ended first).
    scenario = tmp_path / "long-reply.toml"
    scenario.write_text(
        'reply_text = "This is a long answer from the local server, long enough for the caller to talk over it '
        'while it is still playing, which is what this test is about."\n'
    )
    gap = bytes(int(16000 * 1.4) * 2)
    async with running_bridge(tmp_path, scenario=scenario) as running:
        result = await simulate("twilio", running.url, speech + gap + speech, twilio_auth_token=TWILIO_TOKEN,
                                idle_s=0.8)
        events = [what for _, what in sorted(result.timeline)]
        assert "<- clear" in events
        assert events.index("<- clear") > events.index(next(e for e in events if e.startswith("<- first reply")))
        recognizes = [r for r in running.emulator.records if r.qualified_name == "SpeechRecognizer.Recognize"]
        assert len(recognizes) == 2  # the barge-in utterance was asked too
        dialog_ids = {r.event["event"]["header"]["dialogRequestId"] for r in recognizes}  # type: ignore[index]
        assert len(dialog_ids) == 2


async def test_expect_speech_carries_to_the_next_turn_and_alerts_stay_off_the_pi(tmp_path: Path,
                                                                                 speech: bytes) -> None:
    gap = bytes(int(16000 * 2.5) * 2)
    async with running_bridge(tmp_path, scenario=SCENARIOS / "multi-turn.toml") as running:
        result = await simulate("twilio", running.url, speech + gap + speech, twilio_auth_token=TWILIO_TOKEN,
                                idle_s=1.0, min_replies=2)
        assert len(result.turns) == 2, sorted(result.timeline)
        names = [r.qualified_name for r in running.emulator.records]
        recognizes = [r for r in running.emulator.records if r.qualified_name == "SpeechRecognizer.Recognize"]
        assert len(recognizes) == 2
        second = recognizes[1].event["event"]["payload"]  # type: ignore[index]
        assert second["initiator"] == {"type": "EXPECT_SPEECH", "payload": {"token": "demo-expect-1"}}
        # The second answer carried SetAlert: a caller's timer. The bridge is no alerts device: it neither
        # schedules nor acknowledges it, so nothing can ring on the Pi's speaker.
        async with asyncio.timeout(5):
            while running.bridge.calls_by_id:
                await asyncio.sleep(0.01)
        answers = running.bridge.ended[-1].stats.directives
        assert answers[0] == ("SpeechSynthesizer.Speak", "SpeechRecognizer.ExpectSpeech")
        assert "Alerts.SetAlert" in answers[1]
        assert not [n for n in names if n and n.startswith("Alerts.")]


async def test_forged_twilio_webhook_is_refused(tmp_path: Path) -> None:
    async with running_bridge(tmp_path, backend=False) as running, aiohttp.ClientSession() as http:
        params = {"CallSid": "CA1", "From": "+15550100"}
        bad = twilio_sign("not-the-token", running.url + "/twilio/voice", params)
        for headers in ({"X-Twilio-Signature": bad}, {}):
            async with http.post(running.url + "/twilio/voice", data=params, headers=headers) as response:
                assert response.status == 403
        assert running.bridge.tokens._tokens == {}  # nothing started: no stream token was minted
        good = twilio_sign(TWILIO_TOKEN, running.url + "/twilio/voice", params)
        async with http.post(running.url + "/twilio/voice", data=params,
                             headers={"X-Twilio-Signature": good}) as response:
            assert response.status == 200
            twiml = await response.text()
        assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="ws://')
        assert '<Parameter name="caller" value="+15550100" />' in twiml


async def test_vonage_webhooks_need_a_valid_jwt(tmp_path: Path) -> None:
    async with running_bridge(tmp_path, backend=False) as running, aiohttp.ClientSession() as http:
        query = {"from": "447700900123", "uuid": "abc"}
        forged = hs256_token("a-different-secret-of-enough-length!!", b"")
        for headers in ({}, {"Authorization": f"Bearer {forged}"}):
            async with http.get(running.url + "/vonage/answer", params=query, headers=headers) as response:
                assert response.status == 403
        body = json.dumps({"uuid": "abc", "status": "answered"}).encode()
        stale = hs256_token(VONAGE_SECRET, b'{"other":"body"}')
        async with http.post(running.url + "/vonage/event", data=body,
                             headers={"Authorization": f"Bearer {stale}"}) as response:
            assert response.status == 403  # payload_hash does not match
        ok = hs256_token(VONAGE_SECRET, b"")
        async with http.get(running.url + "/vonage/answer", params=query,
                            headers={"Authorization": f"Bearer {ok}"}) as response:
            assert response.status == 200
            ncco = await response.json()
        endpoint = ncco[0]["endpoint"][0]
        assert ncco[0]["action"] == "connect"
        assert endpoint["type"] == "websocket"
        assert endpoint["content-type"] == "audio/l16;rate=16000"
        assert endpoint["uri"].endswith("/vonage/socket")
        assert endpoint["headers"]["caller"] == "447700900123"
        event_ok = hs256_token(VONAGE_SECRET, body)
        async with http.post(running.url + "/vonage/event", data=body,
                             headers={"Authorization": f"Bearer {event_ok}"}) as response:
            assert response.status == 204


@pytest.mark.parametrize("provider", ["twilio", "vonage"])
async def test_bad_stream_token_closes_before_audio(tmp_path: Path, speech: bytes, provider: str) -> None:
    async with running_bridge(tmp_path) as running:
        heard: list[Utterance] = []
        running.bridge.utterance_hooks.append(heard.append)
        result = await simulate(provider, running.url, speech, twilio_auth_token=TWILIO_TOKEN,
                                vonage_secret=VONAGE_SECRET, stream_token="forged-token", idle_s=0.5)
        assert result.closed_by_bridge
        assert result.close_code == 1008
        assert heard == [] and not result.received
        assert running.emulator.records == [] or all(
            r.qualified_name != "SpeechRecognizer.Recognize" for r in running.emulator.records
        )


def _break_media(kind: str) -> Any:
    count = [0]

    def mutate(message: dict[str, Any]) -> dict[str, Any] | str | bytes | None:
        if message.get("event") != "media" and "binary" not in message:
            return message
        count[0] += 1
        if count[0] != 20:
            return message.get("binary", message)  # type: ignore[no-any-return]
        if kind == "json":
            return '{"event": "media", "media": {'
        if kind == "base64":
            return {**message, "media": {**message["media"], "payload": "@@not base64@@"}}
        if kind == "stream":
            return {**message, "streamSid": "MZ-somebody-else"}
        if kind == "frame":
            return bytes(100)  # Vonage: not 640 bytes
        raise AssertionError(kind)

    return mutate


@pytest.mark.parametrize(("provider", "kind"), [
    ("twilio", "json"), ("twilio", "base64"), ("twilio", "stream"), ("vonage", "frame"),
])
async def test_malformed_input_closes_that_call_only(tmp_path: Path, speech: bytes, provider: str, kind: str) -> None:
    async with running_bridge(tmp_path) as running:
        good = asyncio.create_task(simulate(provider, running.url, speech, caller="+15550111",
                                            twilio_auth_token=TWILIO_TOKEN, vonage_secret=VONAGE_SECRET, idle_s=0.8))
        bad = await simulate(provider, running.url, speech, caller="+15550222", twilio_auth_token=TWILIO_TOKEN,
                             vonage_secret=VONAGE_SECRET, idle_s=0.8, mutate=_break_media(kind))
        assert bad.closed_by_bridge and bad.close_code == 1002
        assert not bad.received
        _check_reply(await good)  # the other call went on and got its answer


async def test_host_program_plays_and_hangs_up(tmp_path: Path) -> None:
    async with running_bridge(tmp_path, backend=False) as running:
        silence = bytes(16000 * 2 * 3)
        call = asyncio.create_task(simulate("twilio", running.url, silence, caller="+15550333",
                                            twilio_auth_token=TWILIO_TOKEN, idle_s=5.0, min_replies=0))
        async with asyncio.timeout(5):
            while "+15550333" not in running.bridge.calls_by_caller:
                await asyncio.sleep(0.01)
        t = np.arange(16000) / 16000
        tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
        running.bridge.play("+15550333", tone)
        await asyncio.sleep(1.3)  # the tone (1 s) plays out at real time; the check below is on what arrived
        await running.bridge.hang_up("+15550333")
        result = await call
        assert result.closed_by_bridge
        assert 0.9 < len(result.received) / 2 / 8000 < 1.1
        with pytest.raises(KeyError):
            running.bridge.play("+15550333", tone)


async def test_utterances_are_recorded_only_when_configured(tmp_path: Path, speech: bytes) -> None:
    record = tmp_path / "rec"
    async with running_bridge(tmp_path, backend=False, settings=PhoneSettings(port=0, record_dir=str(record))) as r:
        await simulate("twilio", r.url, speech, twilio_auth_token=TWILIO_TOKEN, idle_s=0.5, min_replies=0)
    assert len(list(record.glob("*.wav"))) == 1


async def test_expect_speech_times_out_only_after_the_reply_has_played(tmp_path: Path, speech: bytes) -> None:
    """A caller who stays silent after a question: ExpectSpeechTimedOut goes to AVS once the question has played
    out to the caller plus the timeout, not counted from when the answer arrived (the reply is ~1 s of speech)."""
    scenario = tmp_path / "ask-back.toml"
    scenario.write_text(
        '[[rule]]\nmatch = "SpeechRecognizer.Recognize"\ntimes = 1\n'
        '[[rule.directive]]\nnamespace = "SpeechSynthesizer"\nname = "Speak"\nspeech = "For how long?"\n'
        '[[rule.directive]]\nnamespace = "SpeechRecognizer"\nname = "ExpectSpeech"\npayload = '
        '{ timeoutInMilliseconds = 300, initiator = { type = "EXPECT_SPEECH", payload = { token = "t" } } }\n'
    )
    async with running_bridge(tmp_path, scenario=scenario) as running:
        result = await simulate("twilio", running.url, speech, twilio_auth_token=TWILIO_TOKEN, idle_s=1.5)
        assert len(result.turns) == 1
        assert running.emulator is not None
        timed_out = await running.emulator.wait_for_event("SpeechRecognizer.ExpectSpeechTimedOut", timeout=5.0)
        async with asyncio.timeout(5):
            while running.bridge.calls_by_id:
                await asyncio.sleep(0.01)
        sent = running.bridge.ended[-1].stats.reply_send_times[0]
        assert len(sent) > 30  # the question is more than half a second of audio
        assert timed_out.time >= sent[-1] + 0.3  # its last frame went out, then the 300 ms ran


async def test_a_call_the_back_end_refuses_is_closed_1011_and_the_next_call_is_answered(tmp_path: Path,
                                                                                       speech: bytes) -> None:
    """The back-end refuses this call's session (a refresh token it does not know): that caller's line closes
    (1011) before any audio is asked; the bridge goes on and answers the next call."""
    async with running_bridge(tmp_path) as running:
        assert running.emulator is not None
        emulator, good = running.emulator, running.bridge.backend
        where = BackendSession(Backend.EMULATOR, endpoint=emulator.base_url, ca_file=str(emulator.ca_file),
                               refresh_token="Atzr|not-a-token-this-server-issued")
        async with call_backend(where, Config()) as refused:
            running.bridge.backend = refused
            result = await simulate("twilio", running.url, speech, twilio_auth_token=TWILIO_TOKEN, idle_s=0.5)
        assert result.closed_by_bridge and result.close_code == 1011
        assert not result.received
        assert not [r for r in emulator.records if r.qualified_name == "SpeechRecognizer.Recognize"]
        running.bridge.backend = good
        _check_reply(await simulate("twilio", running.url, speech, twilio_auth_token=TWILIO_TOKEN, idle_s=0.8))
