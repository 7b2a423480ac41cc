"""The emulator's media route: signed URLs, Range, content types, playlists, HLS, broken entries; fetched by real
clients (curl --http1.1, httpx over HTTP/2) and played by the project's real players (VLC, the miniaudio WAV
sink) over HTTPS."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import wave
from pathlib import Path

import httpx
import miniaudio
import pytest

from avsd.agents.audio_player import http_fetch
from avsd.emulator.media import HLS_SEGMENT_S, STALL_BYTES, ByteRange, MediaLibrary, parse_range
from avsd.emulator.server import Emulator
from avsd.errors import PlaybackError
from avsd.playback.base import Media, PlaybackOutcome, PlaybackSettings
from avsd.playback.decode import PcmFormat
from avsd.playback.outputs import WavFileOutput
from avsd.playback.pcm import WavSinkPlayer
from avsd.playback.playlists import resolve

from .conftest import client_for

pytestmark = pytest.mark.timeout(60)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-99", 1000, ByteRange(0, 99)),
        ("bytes=100-", 1000, ByteRange(100, 999)),
        ("bytes=-10", 1000, ByteRange(990, 999)),
        ("bytes=990-5000", 1000, ByteRange(990, 999)),
        ("bytes=1000-", 1000, "unsatisfiable"),
        ("bytes=-0", 1000, "unsatisfiable"),
        ("bytes=5-1", 1000, None),
        ("bytes=0-1,5-6", 1000, None),
        ("items=0-1", 1000, None),
        ("bytes=x-1", 1000, None),
    ],
)
def test_parse_range(header: str, size: int, expected: object) -> None:
    assert parse_range(header, size) == expected


def test_signature_404_head_and_416() -> None:
    library = MediaLibrary(key=b"k" * 32)
    library.base_url = "https://127.0.0.1:1"
    url = library.url("media:tone/440-0.5.mp3")
    target = url.removeprefix(library.base_url)
    assert library.respond("GET", target.split("?")[0], {}).status == 403
    assert library.respond("GET", target[:-1] + "0", {}).status in (403,)
    full = library.respond("GET", target, {})
    assert full.status == 200 and dict(full.headers)["content-type"] == "audio/mpeg"
    assert dict(full.headers)["content-length"] == str(len(full.body))
    head = library.respond("HEAD", target, {})
    assert head.status == 200 and head.body == b"" and dict(head.headers)["content-length"] == str(len(full.body))
    beyond = library.respond("GET", target, {"range": f"bytes={len(full.body)}-"})
    assert beyond.status == 416 and dict(beyond.headers)["content-range"] == f"bytes */{len(full.body)}"
    missing = library.url("media:missing.mp3").removeprefix(library.base_url)
    assert library.respond("GET", missing, {}).status == 404
    assert library.respond("POST", target, {}).status == 405
    # A tone outside the allowed range is not generated.
    assert library.respond("GET", library.url("tone/5-1.mp3").removeprefix(library.base_url), {}).status == 404


def test_hls_playlist_slides_with_the_clock() -> None:
    clock = FakeClock()
    library = MediaLibrary(clock=clock)
    library.base_url = "https://h:1"

    def playlist() -> str:
        return library.respond("GET", library.url("hls/live.m3u8").removeprefix("https://h:1"), {}).body.decode()

    first = playlist()
    assert "#EXT-X-MEDIA-SEQUENCE:0" in first and "/media/hls/0.mp3" in first and "ENDLIST" not in first
    clock.now += 5 * HLS_SEGMENT_S
    later = playlist()
    assert "#EXT-X-MEDIA-SEQUENCE:3" in later and "/media/hls/5.mp3" in later and "/media/hls/2.mp3" not in later
    segment = library.respond("GET", library.url("hls/5.mp3").removeprefix("https://h:1"), {})
    assert segment.status == 200 and segment.body.startswith(b"ID3\x04")
    assert b"com.apple.streaming.transportStreamTimestamp" in segment.body[:80]
    future = library.respond("GET", library.url("hls/9.mp3").removeprefix("https://h:1"), {})
    assert future.status == 404


async def test_range_over_http2_and_playlists_and_stall(emu: Emulator) -> None:
    tone = emu.media.url("media:tone/440-1.mp3")
    async with client_for(emu) as h2:
        whole = await h2.get(tone)
        part = await h2.get(tone, headers={"range": "bytes=100-199"})
        pls = await h2.get(emu.media.url("media:radio.pls"))
        m3u = await h2.get(emu.media.url("media:radio.m3u"))
        unsigned = await h2.get(tone.split("?")[0])
    assert whole.http_version == "HTTP/2" and whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    decoded = miniaudio.decode(whole.content, nchannels=1, sample_rate=44100)
    assert abs(decoded.duration - 1.0) < 0.1
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert pls.headers["content-type"] == "audio/x-scpls" and m3u.headers["content-type"] == "audio/x-mpegurl"
    assert unsigned.status_code == 403
    # The device's own playlist resolver, with the emulator's CA: the dead mirror first, then the tone.
    fetch = lambda url: http_fetch(url, timeout_s=5.0, ca_file=str(emu.ca_file))  # noqa: E731
    for name in ("radio.pls", "radio.m3u"):
        entries = await resolve(emu.media.url(f"media:{name}"), fetch)
        assert [e.split("?")[0].rsplit("/media/", 1)[1] for e in entries] == ["missing.mp3", "tone/440-20.mp3"]
    with pytest.raises(PlaybackError):  # without the CA the device refuses the self-signed server
        await http_fetch(emu.media.url("media:radio.pls"), timeout_s=5.0)
    # The stalled stream: headers and 16 KiB, then nothing (a client's read times out).
    ctx = ssl.create_default_context(cafile=str(emu.ca_file))
    async with httpx.AsyncClient(http2=True, verify=ctx, timeout=httpx.Timeout(10.0, read=1.0)) as h2:
        received = 0
        with pytest.raises(httpx.ReadTimeout):
            async with h2.stream("GET", emu.media.url("media:stall.mp3")) as response:
                assert response.status_code == 200
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
        assert received == STALL_BYTES


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_http11_range(emu: Emulator) -> None:
    url = emu.media.url("media:say/hello there.mp3")

    def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["curl", "-sS", "--http1.1", "--cacert", str(emu.ca_file), *args, url],
            capture_output=True, timeout=30, check=False,
        )

    whole = await asyncio.to_thread(curl)
    ranged = await asyncio.to_thread(curl, "-r", "10-19", "-w", "\n%{http_code} %{http_version} %{content_type}")
    assert whole.returncode == 0 and len(whole.stdout) > 1000
    body, _, meta = ranged.stdout.rpartition(b"\n")
    assert meta == b"206 1.1 audio/mpeg"
    assert body == whole.stdout[10:20]
    url = emu.media.url("media:missing.mp3")
    missing = await asyncio.to_thread(curl, "-o", "/dev/null", "-w", "%{http_code}")
    assert missing.stdout == b"404"
    url = emu.media.url("media:stall.mp3")
    stalled = await asyncio.to_thread(curl, "-m", "2", "-o", "/dev/null", "-w", "%{http_code} %{size_download}")
    assert stalled.returncode == 28 and stalled.stdout == f"200 {STALL_BYTES}".encode()
    # The stalled connection does not hold the server up: the next request is answered.
    url = emu.media.url("media:radio.m3u")
    assert (await asyncio.to_thread(curl, "-o", "/dev/null", "-w", "%{http_code}")).stdout == b"200"


def _seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


async def test_players_play_served_media_over_https(emu: Emulator, tmp_path: Path) -> None:
    """The WAV sink (miniaudio over urllib, HTTP/1.1) and VLC (GnuTLS, HTTP/2 with Range) play a served tone;
    VLC also plays the HLS live stream, following new segments."""
    vlc_mod = pytest.importorskip("vlc")
    from avsd.playback.vlcplayer import VlcPlayer

    del vlc_mod
    tone = emu.media.url("media:tone/440-1.5.mp3")
    wav_player = WavSinkPlayer(tmp_path / "wav", ca_file=str(emu.ca_file))
    playback = wav_player.play(Media.url(tone))
    async with asyncio.timeout(20):
        assert await playback.finished() is PlaybackOutcome.FINISHED
    await wav_player.close()
    assert abs(_seconds(next((tmp_path / "wav").glob("*.wav"))) - 1.5) < 0.1

    untrusting = WavSinkPlayer(tmp_path / "untrusting")
    playback = untrusting.play(Media.url(tone))
    async with asyncio.timeout(20):
        assert await playback.finished() is PlaybackOutcome.FAILED
    await untrusting.close()

    fmt = PcmFormat(24000, 1)
    vlc = VlcPlayer(PlaybackSettings(ca_file=str(emu.ca_file)), output=WavFileOutput(tmp_path / "vlc", fmt))
    try:
        playback = vlc.play(Media.url(tone))
        async with asyncio.timeout(20):
            assert await playback.finished() is PlaybackOutcome.FINISHED
        assert abs(_seconds(next((tmp_path / "vlc").glob("*.wav"))) - 1.5) < 0.1
        tone_requests = [r for r in emu.records if r.path.startswith("/media/tone/")]
        assert {r.http_version for r in tone_requests} == {"1.1", "2"}
        live = vlc.play(Media.url(emu.media.url("media:hls/live.m3u8")))
        await asyncio.wait_for(live.started(), 20)
        async with asyncio.timeout(20):
            while len({r.path.split("?")[0] for r in emu.records if r.path.startswith("/media/hls/")
                       and r.path.split("?")[0].endswith(".mp3")}) < 3:
                await emu._changed.wait()
        await live.stop()
    finally:
        await vlc.close()


@pytest.mark.timeout(90)
async def test_device_with_vlc_plays_a_served_playlist_with_fallback(tmp_path: Path) -> None:
    """The whole device (AudioPlayer agent + VLC content player with its afile output) gets a Play of the
    emulator's own PLS: the dead first entry (404) is skipped, the tone is fetched by VLC over HTTPS and played."""
    pytest.importorskip("vlc")
    from avsd.emulator.scenario import scenario_from_obj
    from tests.harness import running_device

    scenario = scenario_from_obj({"media": {"playlists": {"two.pls": ["media:missing.mp3", "media:tone/330-2.mp3"]}}})
    out = tmp_path / "content.wav"
    options = ["--aout=afile", f"--audiofile-file={out}", "--audiofile-format=s16", "--audiofile-wav"]
    async with Emulator(cert_dir=tmp_path / "certs", scenario=scenario) as emu:
        settings = [("playback.backend", "vlc"), ("playback.vlc_options", options),
                    ("playback.ca_file", str(emu.ca_file))]
        async with running_device(tmp_path, emulator=emu, settings=settings):
            await emu.push_directive({
                "header": {"namespace": "AudioPlayer", "name": "Play", "messageId": "play-1"},
                "payload": {"playBehavior": "REPLACE_ALL", "audioItem": {"audioItemId": "two", "stream": {
                    "url": emu.media.url("media:two.pls"), "token": "two", "offsetInMilliseconds": 0}}},
            })
            await emu.wait_for_event("AudioPlayer.PlaybackStarted", timeout=30)
            finished = await emu.wait_for_event("AudioPlayer.PlaybackFinished", timeout=30)
    assert finished.event is not None
    # (VLC's afile output runs faster than real time, so the reported offset is not the tone's length; the file is)
    assert finished.event["event"]["payload"]["offsetInMilliseconds"] > 0
    assert "AudioPlayer.PlaybackFailed" not in [r.qualified_name for r in emu.records]
    media = [(r.path.split("?")[0], r.status) for r in emu.records if r.path.startswith("/media/")]
    assert ("/media/two.pls", 200) in media and ("/media/missing.mp3", 404) in media
    assert any(path == "/media/tone/330-2.mp3" and status in (200, 206) for path, status in media)
    assert abs(_seconds(out) - 2.0) < 0.2
