"""curl against the emulator, the --record file, the scenario timeline, reply speech and the CLI."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
from pathlib import Path

import httpx
import miniaudio
import pytest

from avsd.emulator import cli, speech
from avsd.emulator.faults import Fault, FaultKind
from avsd.emulator.scenario import DirectiveSpec, Scenario, TimelineItem
from avsd.emulator.server import Emulator

from .conftest import (
    audio_part_header,
    client_for,
    closing,
    get_token,
    metadata_part,
    multipart_headers,
    open_downchannel,
    recognize_json,
)

CURL_DEMO = Path(__file__).resolve().parents[2] / "scripts" / "curl-demo.sh"
BASIC_SCENARIO = Path(__file__).resolve().parents[2] / "config" / "scenarios" / "basic.toml"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_demo(tmp_path: Path) -> None:
    async with Emulator(cert_dir=tmp_path) as emu:
        proc = await asyncio.create_subprocess_exec(
            "sh",
            str(CURL_DEMO),
            emu.base_url,
            str(emu.ca_file),
            emu.refresh_token,
            "2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await emu.wait_for_downchannel(timeout=10)
        await emu.push_directive(
            {
                "header": {"namespace": "Speaker", "name": "SetMute", "messageId": "c1"},
                "payload": {"mute": True},
            }
        )
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
        assert proc.returncode == 0, (out, err)
        assert b"SetMute" in out  # curl printed the pushed directive
        record = await emu.wait_for_event("System.SynchronizeState")
        assert record.status == 204
        assert record.method == "POST" and record.path == "/v20160207/events"
        assert record.headers["authorization"] == "Bearer <redacted>"
        downchannels = [r for r in emu.records if r.path == "/v20160207/directives"]
        assert [r.status for r in downchannels] == [200]
        tokens = [r for r in emu.records if r.path == "/auth/o2/token"]
        assert [r.status for r in tokens] == [200]
        assert emu.connection_count == 3  # curl: one connection per invocation


async def test_record_file(tmp_path: Path) -> None:
    path = tmp_path / "record.jsonl"
    audio = bytes(range(256)) * 5
    async with Emulator(record_path=path) as emu, client_for(emu) as client:
        auth = {"authorization": f"Bearer {await get_token(client, emu)}"}
        body = metadata_part(recognize_json("CLOSE_TALK")) + audio_part_header() + audio + closing()
        reply = await client.post("/v20160207/events", headers=multipart_headers(auth), content=body)
        assert reply.status_code == 200
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["path"] for line in lines] == ["/auth/o2/token", "/v20160207/events"]
    event = lines[1]
    assert event["qualified_name"] == "SpeechRecognizer.Recognize"
    assert event["status"] == 200
    assert event["audio_length"] == len(audio)
    assert base64.b64decode(event["audio_b64"]) == audio
    text = path.read_text()
    assert emu.refresh_token not in text and "Atza|" not in text  # no credentials in the record


async def test_timeline_pushes_and_faults() -> None:
    scenario = Scenario(
        timeline=(
            TimelineItem(0.05, directive=DirectiveSpec("Speaker", "SetVolume", {"volume": 30})),
            TimelineItem(0.1, fault=Fault(FaultKind.CLOSE_DOWNCHANNEL)),
        )
    )
    async with Emulator(scenario=scenario) as emu, client_for(emu) as client:
        auth = {"authorization": f"Bearer {await get_token(client, emu)}"}
        async with open_downchannel(client, auth) as dc:
            doc = await dc.next_directive()
            assert doc["directive"]["header"]["name"] == "SetVolume"
            assert "dialogRequestId" not in doc["directive"]["header"]
            async with asyncio.timeout(5):
                await dc.ended.wait()
            assert dc.error is None


async def test_reply_text_is_spoken(tmp_path: Path) -> None:
    async with Emulator(reply_text="Custom reply.") as emu, client_for(emu) as client:
        assert emu.reply_text == "Custom reply."
        auth = {"authorization": f"Bearer {await get_token(client, emu)}"}
        body = metadata_part(recognize_json("CLOSE_TALK")) + audio_part_header() + bytes(320) + closing()
        reply = await client.post("/v20160207/events", headers=multipart_headers(auth), content=body)
        assert reply.status_code == 200
        assert speech.synthesize_mp3("Custom reply.") in reply.content  # the cached MP3 is what was sent


def test_speech_and_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    mp3 = speech.synthesize_mp3("Testing one two.")
    assert miniaudio.decode(mp3).duration > 0.3
    asset = speech.ASSET_PATH.read_bytes()
    assert 1000 < len(asset) < 60_000
    assert miniaudio.decode(asset).duration > 0.5
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert speech.synthesize_mp3("Never spoken before, no espeak.") == asset


async def test_cli_runs_and_stops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    scenario = BASIC_SCENARIO
    args = parser.parse_args(
        [
            "--port",
            "0",
            "--cert-dir",
            str(tmp_path),
            "--refresh-token",
            "Atzr|cli-test",
            "--scenario",
            str(scenario),
        ]
    )
    task = asyncio.ensure_future(cli.run(args))
    printed = ""
    async with asyncio.timeout(10):
        while "refresh token" not in printed:
            await asyncio.sleep(0.02)
            printed += capsys.readouterr().out
    assert "Atzr|cli-test" in printed and "https://127.0.0.1:" in printed
    os.kill(os.getpid(), signal.SIGINT)  # the handler run() installed turns this into a clean stop
    async with asyncio.timeout(10):
        assert await task == 0
    bad = parser.parse_args(["--scenario", str(tmp_path / "missing.toml")])
    assert await cli.run(bad) == 78


async def test_http2_client_sees_token_errors(emu: Emulator, client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/auth/O2/token", data={"grant_type": "refresh_token", "refresh_token": "wrong"}
    )
    assert reply.status_code >= 400
    assert reply.json()["error"]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_demo_as_the_readme_runs_it(tmp_path: Path) -> None:
    """`avsd emulator --port P` in one process, `scripts/curl-demo.sh URL CA TOKEN` in another, nothing pushed on
    the downchannel: exit 0, and neither curl's expected timeout nor a missing body file is reported."""
    import sys

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(CURL_DEMO.parents[1])}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsd", "emulator", "--port", str(port), "--cert-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env,
    )
    try:
        assert server.stdout is not None
        async with asyncio.timeout(30):
            lines = [(await server.stdout.readline()).decode() for _ in range(4)]
        base_url = lines[0].split(" on ", 1)[1].strip()
        ca_file = lines[1].split(":", 1)[1].strip()
        token = lines[2].split(":", 1)[1].strip()
        media = lines[3].split(":", 1)[1].strip()
        assert media.startswith(f"{base_url}/media/radio.pls?sig=")
        fetched = await asyncio.create_subprocess_exec(
            "curl", "--silent", "--http1.1", "--cacert", ca_file, "--write-out", "%{http_code} %{content_type}",
            "--output", os.devnull, media, stdout=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            assert (await fetched.communicate())[0] == b"200 audio/x-scpls"
        assert base_url == f"https://127.0.0.1:{port}"
        demo = await asyncio.create_subprocess_exec(
            str(CURL_DEMO), base_url, ca_file, token,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            out, err = await demo.communicate()
    finally:
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await server.wait()
    assert demo.returncode == 0, (out, err)
    assert err == b"", err
    text = out.decode()
    assert "downchannel: 200" in text and "event: 204" in text
    assert "downchannel body: (nothing pushed)" in text
