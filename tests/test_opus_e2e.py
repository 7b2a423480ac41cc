"""OPUS Recognize end to end: real speech -> wake word -> Opus-encoded upload over HTTP/2 -> the emulator decodes it,
endpoints the decoded speech with its own VAD and pushes StopCapture -> Speak plays. Also the emulator's 400 for an
upload that says OPUS but is not."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import httpx
import numpy as np
import pytest

from avsd.audio.frames import SAMPLE_RATE
from avsd.audio.opus import PACKET_PCM_BYTES
from avsd.avs.messages import Event, context_entry
from avsd.emulator.server import Emulator
from avsd.state import DialogState
from tests.harness import SPEECH, fixture_pcm, room_noise, running_device, with_noise

S = DialogState
WAKE = "alexa-what-time-is-it"


@pytest.mark.parametrize(("bitrate", "size"), [(32000, 80), (64000, 160)])
async def test_opus_dialog_is_decoded_endpointed_by_the_server_and_answered(
    tmp_path: Path, bitrate: int, size: int
) -> None:
    settings = [
        ("dialog.audio_format", "OPUS"),
        ("dialog.opus_bitrate", bitrate),
        # Local endpointing waits longer than the server's (700 ms), so the StopCapture must come from the
        # emulator's VAD running over the decoded audio.
        ("endpointing.trailing_silence_s", 4.0),
    ]
    lead_in = room_noise(2.0)
    speech = with_noise(fixture_pcm(WAKE))
    async with asyncio.timeout(40), running_device(tmp_path, settings=settings, stop_capture=True) as device:
        # Up to the end of the command as fast as it goes, then the silence after it at real-time pace, so the
        # upload ends where an endpointer decided, not where the input ran out.
        cut = SPEECH[WAKE]["command_end"] * 2
        await device.source.feed(lead_in + speech[:cut])
        tail = with_noise(speech[cut:] + bytes(3 * SAMPLE_RATE * 2), seed=4)
        feeding = asyncio.create_task(device.source.feed(tail, realtime=True))
        record = await device.emulator.wait_for_event("SpeechRecognizer.Recognize", timeout=10)
        await asyncio.wait_for(record.body_complete.wait(), 10)
        await device.settle()
        feeding.cancel()

    payload = record.event["event"]["payload"]
    assert payload["format"] == "OPUS" and payload["profile"] == "NEAR_FIELD"
    # wakeWordIndices still count samples of the audio: 500 ms of pre-roll.
    assert payload["initiator"]["payload"]["wakeWordIndices"]["startIndexInSamples"] == 8000
    assert record.audio_format == "OPUS"
    assert record.opus_packet_bytes == size
    encoded = bytes(record.encoded_audio)
    assert len(encoded) % size == 0
    # Each packet went out as its own DATA frame: the upload arrived in packet-sized pieces.
    sizes = [n for _, n in record.audio_chunks]
    assert sum(sizes) == len(encoded)
    assert sizes.count(size) >= 0.9 * len(sizes), sorted(set(sizes))
    assert len(record.audio) == len(encoded) // size * PACKET_PCM_BYTES

    # The decoded audio is the speech that was fed (aligned by correlation: Opus adds its look-ahead delay).
    fed = np.frombuffer(lead_in + speech[:cut] + tail, "<i2").astype(np.float64)
    got = np.frombuffer(bytes(record.audio), "<i2").astype(np.float64)
    command_start = len(lead_in) // 2 + SPEECH[WAKE]["command_start"]
    command_end = len(lead_in) // 2 + SPEECH[WAKE]["command_end"]
    probe = got[SAMPLE_RATE : SAMPLE_RATE + 8000]  # 1 s after the upload starts: inside the speech
    scores = np.correlate(fed[: command_end + SAMPLE_RATE], probe, mode="valid")
    start = int(np.argmax(scores)) - SAMPLE_RATE  # where the upload starts in the fed stream
    window = fed[start + SAMPLE_RATE : start + SAMPLE_RATE + len(probe)]
    assert float(np.corrcoef(window, probe)[0, 1]) > 0.9
    # The whole command is in the upload, and it ended soon after it (server endpointing, not the 4 s local one).
    end = start + len(got)
    assert end >= command_end - 20 * SAMPLE_RATE // 1000
    assert end - command_end < 1.5 * SAMPLE_RATE, (end - command_end) / SAMPLE_RATE
    assert command_start > start

    assert any(d.qualified_name == "SpeechRecognizer.StopCapture" for d in device.directives)
    assert device.states[:4] == [S.LISTENING, S.THINKING, S.SPEAKING, S.IDLE], device.states
    assert len(device.replies()) == 1  # the Speak reply played


async def test_an_upload_that_says_opus_but_is_not_gets_400(tmp_path: Path) -> None:
    async with asyncio.timeout(20), Emulator(cert_dir=tmp_path / "certs") as emulator:
        token = await _access_token(emulator)
        payload = {"profile": "CLOSE_TALK", "format": "OPUS"}
        event = Event.new("SpeechRecognizer", "Recognize", payload, dialog_request_id="d1").with_context(
            [context_entry("SpeechRecognizer", "RecognizerState", {"wakeword": "ALEXA"})]
        )
        boundary = "avsd-test-boundary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n'
            f"Content-Type: application/json; charset=UTF-8\r\n\r\n".encode()
            + event.to_json()
            + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="audio"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + fixture_pcm(WAKE)[:6400]  # PCM, not Opus
            + f"\r\n--{boundary}--\r\n".encode()
        )
        context = ssl.create_default_context(cafile=str(emulator.ca_file))
        async with httpx.AsyncClient(http2=True, verify=context) as client:
            response = await client.post(
                f"{emulator.base_url}/v20160207/events",
                content=body,
                headers={
                    "authorization": f"Bearer {token}",
                    "content-type": f"multipart/form-data; boundary={boundary}",
                },
            )
    assert response.status_code == 400
    assert response.json()["payload"]["code"] == "INVALID_REQUEST_EXCEPTION"
    assert "OPUS" in response.json()["payload"]["description"]


async def _access_token(emulator: Emulator) -> str:
    context = ssl.create_default_context(cafile=str(emulator.ca_file))
    async with httpx.AsyncClient(http2=True, verify=context) as client:
        response = await client.post(
            f"{emulator.base_url}/auth/o2/token",
            data={"grant_type": "refresh_token", "refresh_token": emulator.refresh_token, "client_id": "x"},
        )
    return str(json.loads(response.text)["access_token"])
