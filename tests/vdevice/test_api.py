"""The Virtual Device API against Bespoken's own SDK (virtual-device-sdk 1.9.3, unchanged) and plain HTTP clients.

Back-end: the local AVS server answering every Recognize with conftest.REPLY, spoken by espeak-ng as MP3 and
transcribed back by pocketsphinx: ``transcript`` is real speech-to-text of the reply audio, not the directive text."""

from __future__ import annotations

import base64
import io
import json
import wave
from typing import Any

import aiohttp
import pytest

from tests.vdevice.conftest import OTHER_TOKEN, RunningDevice, needs_node, sdk

pytestmark = pytest.mark.timeout(120)


def heard_emulator(transcript: str) -> bool:
    return "how many players" in transcript.lower()


@needs_node
async def test_sdk_message_transcribes_the_reply(vdevice: RunningDevice) -> None:
    verdict = await sdk(vdevice.url, {"op": "message", "token": vdevice.token, "text": "what time is it",
                                      "phrases": ["welcome to the quiz"], "debug": True})
    result = verdict["ok"]
    assert result["message"] == "what time is it"
    assert heard_emulator(result["transcript"]), result["transcript"]
    assert result["transcript"].lower().startswith("welcome to the quiz"), result["transcript"]  # the hint
    assert result["debug"]["rawTranscript"]
    assert result["debug"]["deviceInteractionDuration"] > 0
    names = [d["header"]["name"] for d in result["raw"]["messageBody"]["directives"]]
    assert "Speak" in names
    assert result["card"] is None and "streamURL" not in result
    async with aiohttp.ClientSession() as http:
        async with http.get(result["transcriptAudioURL"]) as reply:
            assert reply.status == 200 and reply.content_type == "audio/mpeg"
            assert len(await reply.read()) > 1000
        async with http.get(result["utteranceURL"]) as reply:
            assert reply.status == 200
            with wave.open(io.BytesIO(await reply.read())) as wav:
                assert wav.getframerate() == 16000 and wav.getnframes() > 8000
        forged = result["utteranceURL"].rsplit("sig=", 1)[0] + "sig=" + "0" * 32
        async with http.get(forged) as reply:
            assert reply.status == 403


@needs_node
async def test_sdk_homophones_and_batch(vdevice: RunningDevice) -> None:
    verdict = await sdk(vdevice.url, {
        "op": "batch", "token": vdevice.token, "homophones": {"PLAYERS": ["players"]},
        "messages": [{"text": "what time is it"}, {"text": "hello there"}],
    })
    results = verdict["ok"]["results"]
    assert len(results) == 2
    for result in results:
        assert result["status"] == "COMPLETED"
        assert heard_emulator(result["debug"]["rawTranscript"]), result["debug"]["rawTranscript"]
        assert "many PLAYERS are" in result["transcript"]  # the SDK's homophones, whole words, key's case


@needs_node
async def test_sdk_async_conversation(vdevice: RunningDevice) -> None:
    verdict = await sdk(vdevice.url, {
        "op": "async", "token": vdevice.token, "pollMs": 100,
        "messages": [{"text": "what time is it"}, {"text": "and now"}],
    })
    out = verdict["ok"]
    assert out["final"]["status"] == "COMPLETED"
    assert len(out["final"]["results"]) == 2
    assert all(heard_emulator(r["transcript"]) for r in out["final"]["results"])


@needs_node
async def test_sdk_sees_bespoken_errors(vdevice: RunningDevice) -> None:
    verdict = await sdk(vdevice.url, {"op": "message", "token": "not-a-token-at-all-xx", "text": "hi"})
    assert verdict == {"rejected": "Invalid user_id"}


async def get(url: str, **params: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url, params=params) as reply:
        return reply.status, await reply.text()


async def post(url: str, body: Any, **params: Any) -> tuple[int, str]:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    async with aiohttp.ClientSession() as http, http.post(
        url, params=params, data=data, headers={"Content-Type": "application/json"}
    ) as reply:
        return reply.status, await reply.text()


async def test_documented_errors(vdevice: RunningDevice) -> None:
    url, token = vdevice.url, vdevice.token
    assert await get(url + "/process", user_id=token) == (400, "message is required")
    assert await get(url + "/process", message="hi") == (400, "user_id is required")
    assert await get(url + "/process", message="hi", user_id="x" * 20) == (400, "Invalid user_id")
    status, body = await get(url + "/process", message="hi", user_id=token, stt="bing")
    assert (status, json.loads(body)) == (400, {"error": "stt is invalid, it could be google or witai"})
    assert await post(url + "/batch_process", b"{not json", user_id=token) == (400, "Invalid message")
    assert await post(url + "/batch_process", {"messages": [{"nothing": 1}]}, user_id=token) == (
        400, "Invalid message")
    status, body = await post(url + "/batch_process", {"messages": [{"audio": "AAAA", "format": "flac"}]},
                              user_id=token)
    assert (status, json.loads(body)) == (400, {"error": "Invalid format in message"})
    status, body = await post(url + "/batch_process", {"messages": [{"audio": "!!not base64!!"}]}, user_id=token)
    assert (status, json.loads(body)) == (400, {"error": "Invalid encoded audio in message"})
    status, body = await post(url + "/batch_process", {"messages": [{"audio": "AAAA", "format": "mp3"}]},
                              user_id=token)
    assert (status, json.loads(body)) == (400, {"error": "Error processing audio"})
    status, body = await get(url + "/conversation", uuid="no-such-conversation")
    assert (status, json.loads(body)) == (404, {"error": "The uuid provided doesn't match a process"})
    status, body = await get(url + "/conversation")
    assert (status, json.loads(body)) == (400, {"error": "Required parameter uuid is missing"})
    status, _ = await post(url + "/batch_process", b"x" * (17 * 1024 * 1024), user_id=token)
    assert status == 413
    assert await get(url + "/health") == (200, '{"status": "ok"}')
    # and the server still answers a good request after all of that
    status, body = await get(url + "/process", message="what time is it", user_id=token)
    assert status == 200 and heard_emulator(json.loads(body)["transcript"])


async def test_audio_message_wav_at_another_rate(vdevice: RunningDevice) -> None:
    from avsd.speech.convert import resample, wav_bytes
    from avsd.speech.tts import espeak_pcm

    pcm = resample(espeak_pcm("what time is it"), 8000)  # a telephone-rate WAV: converted on the way in
    audio = base64.b64encode(wav_bytes(pcm)).decode()
    status, body = await post(vdevice.url + "/batch_process", {"messages": [{"audio": audio, "format": "wav"}]},
                              user_id=OTHER_TOKEN)
    assert status == 200, body
    assert heard_emulator(json.loads(body)["results"][0]["transcript"])
    recognize = [r for r in vdevice.emulator.records if r.qualified_name == "SpeechRecognizer.Recognize"]
    assert recognize and len(recognize[-1].audio) > 16000  # 16 kHz PCM reached the server


async def test_audio_url_refuses_loopback_by_default(tmp_path: Any) -> None:
    from avsd.emulator.server import Emulator
    from avsd.vdevice.fetch import AudioFetcher
    from tests.vdevice.conftest import REPLY, TOKEN, running_vdevice

    async with Emulator(cert_dir=tmp_path / "certs", reply_text=REPLY) as emulator, running_vdevice(
        emulator, tmp_path, fetcher=AudioFetcher()
    ) as url:
        status, body = await post(url + "/batch_process",
                                  {"messages": [{"url": url + "/health", "format": "wav"}]}, user_id=TOKEN)
        assert (status, json.loads(body)) == (400, {"error": "Error processing audio"})
        status, body = await post(url + "/batch_process",
                                  {"messages": [{"url": "file:///etc/passwd"}]}, user_id=TOKEN)
        assert (status, json.loads(body)) == (400, {"error": "Error processing audio"})
