"""Playlist detection, parsing and resolution with real-world-like samples and hypothesis garbage."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avsd.playback.playlists import (
    PlaylistError,
    PlaylistKind,
    detect,
    parse_asx,
    parse_m3u,
    parse_playlist,
    parse_pls,
    resolve,
)

LIMIT = 5.0
BASE = "http://radio.example.org/lists/station.m3u"

TUNEIN_M3U = b"http://stream.example.com:8000/live.mp3\nhttp://backup.example.com/live.aac\n"
TUNEIN_STATUS_400 = b"#STATUS: 400\r\n#Invalid station id\r\n"
EXTENDED_M3U = (
    "\ufeff#EXTM3U\r\n"
    "\r\n"
    "#EXTINF:-1,Radio Example - High\r\n"
    "stream/high.mp3\r\n"
    "   \r\n"
    "# a plain comment\r\n"
    "#EXTINF:-1,Radio Example - Root\r\n"
    "/root.aac\r\n"
    "file:///etc/passwd\r\n"
    "C:\\Music\\local.mp3\r\n"
    "https://cdn.example.net/live?sid=1&fmt=aac\r\n"
    "stream/high.mp3\r\n"
).encode()
IHEART_PLS = b"""[playlist]
NumberOfEntries=3
File2=http://c2.iheart.example/stream/1234
Title2=Mirror two
File1=http://c1.iheart.example/stream/1234
Title1=Mirror one
file10 = http://c10.iheart.example/stream/1234
File3=
File4=http://c4.iheart.example/stream/1234
Length1=-1
Version=2
"""
HLS_MASTER = b"""#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.5"
low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS="mp4a.40.2"
high/index.m3u8
"""
HLS_MEDIA = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:10,\nseg1.aac\n"
ASX = b"""<ASX version="3.0">
  <Title>Radio</Title>
  <Entry><Ref HREF="mms://wm.example.com/radio?a=1&amp;b=2" /></Entry>
  <entry><ref href='http://wm.example.com/radio.mp3'/></entry>
  <ENTRYREF HREF="http://wm.example.com/more.asx" />
</ASX>"""
REFERENCE = b"[Reference]\r\nRef1=http://wm.example.com/radio?MSWMExt=.asf\r\nRef2=http://10.0.0.1:80/radio\r\n"
MP3_START = b"ID3\x03\x00\x00\x00\x00\x0f\x76" + b"\xff\xfb\x90\x64\x00" * 40
ASF_START = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c") + b"\x00" * 40


@pytest.mark.parametrize(
    ("content_type", "body", "url", "kind"),
    [
        ("audio/x-mpegurl", TUNEIN_M3U, "http://opml.radiotime.com/Tune.ashx?id=s1", PlaylistKind.M3U),
        ("audio/x-mpegurl; charset=utf-8", TUNEIN_STATUS_400, "", PlaylistKind.M3U),
        ("text/plain", TUNEIN_M3U, "http://x/tune", PlaylistKind.M3U),
        (None, TUNEIN_M3U, "http://x/tune", PlaylistKind.M3U),
        ("application/octet-stream", EXTENDED_M3U, "", PlaylistKind.M3U),
        ("audio/x-scpls", IHEART_PLS, "", PlaylistKind.PLS),
        ("audio/x-mpegurl", IHEART_PLS, "", PlaylistKind.PLS),  # the first bytes win over a wrong type
        ("text/html", b"\xef\xbb\xbf  [PlayList]\nFile1=http://a/b\n", "", PlaylistKind.PLS),
        ("application/vnd.apple.mpegurl", HLS_MASTER, "", PlaylistKind.HLS),
        ("audio/x-mpegurl", HLS_MEDIA, "", PlaylistKind.HLS),
        ("video/x-ms-asf", ASX, "", PlaylistKind.ASX),
        ("video/x-ms-asf", ASF_START, "", PlaylistKind.NONE),  # real ASF media under the same type
        ("video/x-ms-asf", REFERENCE, "", PlaylistKind.REFERENCE),
        ("audio/mpeg", MP3_START, "http://x/live.m3u", PlaylistKind.NONE),
        ("audio/mpeg", b"http://looks/like/a/url\n", "", PlaylistKind.NONE),  # the server says audio
        ("", b"File1=http://a/b", "http://x/list.pls", PlaylistKind.PLS),  # extension when nothing else
        ("text/html", b"<html><body>Not found</body></html>", "", PlaylistKind.NONE),
        ("audio/aac", b"", "", PlaylistKind.NONE),
    ],
)
def test_detect(content_type: str | None, body: bytes, url: str, kind: PlaylistKind) -> None:
    assert detect(content_type, body, url) is kind


def test_tunein_m3u() -> None:
    assert parse_playlist(TUNEIN_M3U, "audio/x-mpegurl", "http://opml.radiotime.com/Tune.ashx?id=s1") == [
        "http://stream.example.com:8000/live.mp3",
        "http://backup.example.com/live.aac",
    ]


def test_tunein_status_400_is_a_playlist_error() -> None:
    with pytest.raises(PlaylistError, match="400"):
        parse_playlist(TUNEIN_STATUS_400, "audio/x-mpegurl", "http://opml.radiotime.com/Tune.ashx?id=bad")


def test_extended_m3u_with_bom_crlf_blank_lines_relative_urls_and_local_files() -> None:
    assert parse_playlist(EXTENDED_M3U, "audio/x-mpegurl", BASE) == [
        "http://radio.example.org/lists/stream/high.mp3",
        "http://radio.example.org/root.aac",
        "https://cdn.example.net/live?sid=1&fmt=aac",
    ]


def test_m3u_without_base_keeps_only_absolute_network_urls() -> None:
    assert parse_m3u("relative.mp3\nrtsp://cam/stream\nicy://radio/live\n") == ["rtsp://cam/stream",
                                                                               "icy://radio/live"]


def test_iheart_pls_orders_by_number_and_ignores_number_of_entries() -> None:
    assert parse_playlist(IHEART_PLS, "audio/x-scpls", "http://iheart.example/x.pls") == [
        "http://c1.iheart.example/stream/1234",
        "http://c2.iheart.example/stream/1234",
        "http://c4.iheart.example/stream/1234",
        "http://c10.iheart.example/stream/1234",
    ]


def test_pls_relative_entries() -> None:
    assert parse_pls("[playlist]\nFile1=../live.mp3\n", "http://a.example/pls/x.pls") == ["http://a.example/live.mp3"]


def test_asx_and_reference() -> None:
    assert parse_asx(ASX.decode()) == [
        "mms://wm.example.com/radio?a=1&b=2",
        "http://wm.example.com/radio.mp3",
        "http://wm.example.com/more.asx",
    ]
    assert parse_playlist(REFERENCE, "video/x-ms-asf", "") == [
        "http://wm.example.com/radio?MSWMExt=.asf",
        "http://10.0.0.1:80/radio",
    ]


@pytest.mark.parametrize(
    "body", [b"[playlist]\nNumberOfEntries=0\n", b"#EXTM3U\n#EXTINF:-1,nothing\n", b"<asx></asx>"]
)
def test_empty_playlists_raise(body: bytes) -> None:
    with pytest.raises(PlaylistError):
        parse_playlist(body, None, "http://x/y")


def test_hls_and_audio_are_not_expanded() -> None:
    assert parse_playlist(HLS_MASTER, "application/vnd.apple.mpegurl", "http://h/master.m3u8") == [
        "http://h/master.m3u8"
    ]
    assert parse_playlist(MP3_START, "audio/mpeg", "http://h/live") == ["http://h/live"]


class FakeWeb:
    def __init__(self, pages: dict[str, tuple[str, bytes]]) -> None:
        self.pages = pages
        self.fetched: list[str] = []

    async def __call__(self, url: str) -> tuple[str, bytes]:
        self.fetched.append(url)
        if url not in self.pages:
            raise ConnectionError(f"{url}: 404")
        return self.pages[url]


async def test_resolve_nested_playlists_with_a_dead_mirror() -> None:
    web = FakeWeb({
        "http://opml.radiotime.com/Tune.ashx?id=s1": (
            "audio/x-mpegurl",
            b"http://dead.example/list.pls\nhttp://ih.example/list.pls\nhttp://direct.example/live.mp3\n",
        ),
        "http://ih.example/list.pls": ("audio/x-scpls", b"[playlist]\nFile2=http://m2/s\nFile1=http://m1/s\n"),
        "http://direct.example/live.mp3": ("audio/mpeg", MP3_START),
    })
    async with asyncio.timeout(LIMIT):
        urls = await resolve("http://opml.radiotime.com/Tune.ashx?id=s1", web)
    assert urls == ["http://m1/s", "http://m2/s", "http://direct.example/live.mp3"]
    # live.mp3 is not fetched: only entries that look like playlists are (a stream would never end).
    assert "http://direct.example/live.mp3" not in web.fetched


async def test_resolve_hands_hls_and_plain_streams_over_as_is() -> None:
    web = FakeWeb({
        "http://h/master.m3u8": ("application/vnd.apple.mpegurl", HLS_MASTER),
        "http://s/live": ("audio/mpeg", MP3_START),
        "http://l/list.m3u": ("audio/x-mpegurl", b"#EXTM3U\nhttp://h/master.m3u8\n"),
    })
    async with asyncio.timeout(LIMIT):
        assert await resolve("http://h/master.m3u8", web) == ["http://h/master.m3u8"]
        assert await resolve("http://s/live", web) == ["http://s/live"]
        assert await resolve("http://l/list.m3u", web) == ["http://h/master.m3u8"]


async def test_resolve_cycles_and_depth_are_bounded() -> None:
    web = FakeWeb({
        "http://a/1.m3u": ("audio/x-mpegurl", b"http://a/2.m3u\nhttp://a/s1\n"),
        "http://a/2.m3u": ("audio/x-mpegurl", b"http://a/1.m3u\nhttp://a/3.m3u\nhttp://a/s2\n"),
        "http://a/3.m3u": ("audio/x-mpegurl", b"http://a/4.m3u\n"),
        "http://a/4.m3u": ("audio/x-mpegurl", b"http://a/s4\n"),
    })
    async with asyncio.timeout(LIMIT):
        urls = await resolve("http://a/1.m3u", web, max_depth=2)
    # 1 -> 2 -> (1 already visited: kept as a candidate) 3 -> (depth limit: 4 kept as a candidate)
    assert urls == ["http://a/1.m3u", "http://a/4.m3u", "http://a/s2", "http://a/s1"]
    assert web.fetched == ["http://a/1.m3u", "http://a/2.m3u", "http://a/3.m3u"]


async def test_resolve_errors() -> None:
    web = FakeWeb({
        "http://t/bad": ("audio/x-mpegurl", TUNEIN_STATUS_400),
        "http://t/all-dead.m3u": ("audio/x-mpegurl", b"http://gone/1.pls\nhttp://gone/2.pls\n"),
    })
    async with asyncio.timeout(LIMIT):
        with pytest.raises(PlaylistError, match="400"):
            await resolve("http://t/bad", web)
        with pytest.raises(PlaylistError, match="no playable stream"):
            await resolve("http://t/all-dead.m3u", web)
        with pytest.raises(ConnectionError):  # the top-level fetch's own error propagates
            await resolve("http://t/missing", web)


def test_playlist_error_is_a_value_error() -> None:
    assert issubclass(PlaylistError, ValueError)


PREFIXES = st.sampled_from([b"", b"#EXTM3U\n", b"[playlist]\n", b"<asx>", b"[Reference]\n", b"\xef\xbb\xbf",
                            b"#EXT-X-VERSION:3\n", b"File1=", b"<ref href="])
CONTENT_TYPES = st.sampled_from([None, "", "audio/x-mpegurl", "audio/x-scpls", "video/x-ms-asf", "text/plain",
                                 "audio/mpeg", "application/octet-stream", ";;;", "x/y; charset=\xff"])
BASES = st.sampled_from(["", BASE, "http://[::1]:80/a.pls", "not a url", "http://[broken/x.m3u"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=PREFIXES, junk=st.binary(max_size=400) | st.text(max_size=400).map(str.encode),
       content_type=CONTENT_TYPES, base=BASES)
def test_garbage_only_raises_playlist_error(prefix: bytes, junk: bytes, content_type: str | None,
                                            base: str) -> None:
    try:
        urls = parse_playlist(prefix + junk, content_type, base)
    except PlaylistError:
        return
    assert all(isinstance(u, str) and "\n" not in u for u in urls)


@settings(max_examples=100, deadline=None)
@given(bodies=st.lists(st.tuples(CONTENT_TYPES, PREFIXES, st.binary(max_size=200)), min_size=1, max_size=5))
def test_resolve_garbage_only_raises_playlist_error(bodies: list[tuple[str | None, bytes, bytes]]) -> None:
    calls = iter(bodies)

    async def fetch(url: str) -> tuple[str, bytes]:
        try:
            content_type, prefix, junk = next(calls)
        except StopIteration:
            raise ConnectionError("no more pages") from None
        return content_type or "", prefix + junk

    async def go() -> list[str]:
        async with asyncio.timeout(LIMIT):
            return await resolve("http://start/list.m3u", fetch)

    try:
        urls = asyncio.run(go())
    except PlaylistError:
        return
    assert urls and all(isinstance(u, str) for u in urls)
