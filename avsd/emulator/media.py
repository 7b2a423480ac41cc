"""The emulator's own media: what an AudioPlayer scenario's URLs point at, served over the same HTTPS port.

Routes (all under ``/media/``, every URL signed: ``?sig=`` is an HMAC of the path made with a per-emulator key,
as CDN URLs in real AVS Play directives are signed; an unsigned or wrongly signed URL answers 403)::

    tone/<hz>-<seconds>.mp3        a sine tone (MP3, 44.1 kHz mono 64 kbit/s)
    say/<text>.mp3                 speech made from text (espeak-ng + lame, see speech.py)
    missing.mp3                    404: a dead mirror
    stall.mp3                      200 with the length of a 30 s tone, then 16 KiB of it and nothing more
    <name>.m3u | .m3u8 | .pls      a playlist: the scenario's ``[media.playlists]`` or a built-in one
    hls/live.m3u8                  an HLS live playlist (no EXT-X-ENDLIST, sliding window of 3 segments)
    hls/<sequence>.mp3             one 2 s packed-audio MP3 segment (ID3 PRIV timestamp, as HLS requires)

Scenarios write ``media:<route>`` (e.g. ``url = "media:radio.pls"``); :meth:`MediaLibrary.url` turns it into
the signed absolute URL. Playlist entries are written the same way and rendered absolute and signed too.

``GET`` and ``HEAD``; single ``Range: bytes=`` requests get 206 with ``Content-Range`` (416 when unsatisfiable;
multi-range requests get the whole body, which RFC 9110 §14.2 allows). Pure apart from the content cache and
the injected clock: the HTTP/2 and HTTP/1.1 layers serialise a :class:`PlainResponse`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import numpy as np

from avsd.emulator.replies import PlainResponse, plain_text
from avsd.emulator.speech import encode_mp3, synthesize_mp3

_log = logging.getLogger(__name__)

MEDIA_PREFIX = "/media/"
MEDIA_SCHEME = "media:"
TONE_RATE = 44100
TONE_KBPS = 64
STALL_BYTES = 16 * 1024
STALL_TONE_S = 30.0
HLS_SEGMENT_S = 2.0
HLS_WINDOW = 3
_HLS_FREQS = (440.0, 660.0)
_MAX_TONE_S = 600.0
_TONE = re.compile(r"^tone/(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\.mp3$")
_SAY = re.compile(r"^say/(.+)\.mp3$")
_HLS_SEGMENT = re.compile(r"^hls/(\d{1,12})\.mp3$")
_CACHE_MAX = 16

PLAYLIST_SUFFIXES = (".m3u", ".m3u8", ".pls")
CONTENT_TYPES = {
    ".mp3": "audio/mpeg",
    ".m3u": "audio/x-mpegurl",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".pls": "audio/x-scpls",
}

# Built-in playlists (scenarios may add or replace them): a dead mirror first, then music, so the fallback path
# is exercised by default.
BUILTIN_PLAYLISTS: Mapping[str, tuple[str, ...]] = {
    "radio.pls": ("media:missing.mp3", "media:tone/440-20.mp3"),
    "radio.m3u": ("media:missing.mp3", "media:tone/440-20.mp3"),
    "stalled.pls": ("media:stall.mp3", "media:tone/660-20.mp3"),
}


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive


def parse_range(header: str, size: int) -> ByteRange | str | None:
    """A single ``bytes=`` range within ``size``: the range, None (serve everything), or "unsatisfiable"."""
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:  # suffix: the last N bytes
            length = int(last)
            if length <= 0:
                return "unsatisfiable"
            return ByteRange(max(0, size - length), size - 1) if size else "unsatisfiable"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return ByteRange(start, min(end, size - 1))


def tone_mp3(freq_hz: float, seconds: float, *, phase_s: float = 0.0) -> bytes:
    """A sine tone at half scale with 10 ms fades (no clicks at the ends)."""
    n = int(TONE_RATE * seconds)
    t = (np.arange(n) / TONE_RATE) + phase_s
    wave = 0.5 * np.sin(2 * math.pi * freq_hz * t)
    fade = min(n // 2, TONE_RATE // 100)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave[:fade] *= ramp
        wave[n - fade :] *= ramp[::-1]
    pcm = (wave * 32767).astype("<i2").tobytes()
    return encode_mp3(pcm, TONE_RATE, 1, TONE_KBPS)


def id3_timestamp(pts_90khz: int) -> bytes:
    """The ID3v2.4 tag with the PRIV frame ``com.apple.streaming.transportStreamTimestamp`` that every HLS
    packed-audio segment starts with (RFC 8216 §3.4): the 33-bit MPEG-2 timestamp of its first sample."""
    owner = b"com.apple.streaming.transportStreamTimestamp\x00"
    frame_body = owner + struct.pack(">Q", pts_90khz & ((1 << 33) - 1))
    frame = b"PRIV" + _syncsafe(len(frame_body)) + b"\x00\x00" + frame_body
    return b"ID3\x04\x00\x00" + _syncsafe(len(frame)) + frame


def _syncsafe(value: int) -> bytes:
    return bytes(((value >> shift) & 0x7F) for shift in (21, 14, 7, 0))


def _content_type(route: str) -> str:
    for suffix, ctype in CONTENT_TYPES.items():
        if route.endswith(suffix):
            return ctype
    return "application/octet-stream"


def render_playlist(name: str, urls: Sequence[str]) -> str:
    """M3U (``.m3u``/``.m3u8``) or PLS text listing ``urls``."""
    if name.endswith(".pls"):
        lines = ["[playlist]"]
        for index, url in enumerate(urls, 1):
            lines += [f"File{index}={url}", f"Title{index}=avsd emulator {index}", f"Length{index}=-1"]
        lines += [f"NumberOfEntries={len(urls)}", "Version=2"]
        return "\n".join(lines) + "\n"
    lines = ["#EXTM3U"]
    for index, url in enumerate(urls, 1):
        lines += [f"#EXTINF:-1,avsd emulator {index}", url]
    return "\n".join(lines) + "\n"


class MediaLibrary:
    """Signs media URLs and answers ``/media/...`` requests (cached generated content)."""

    def __init__(
        self,
        playlists: Mapping[str, Sequence[str]] | None = None,
        *,
        key: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = key or secrets.token_bytes(32)
        self._playlists: dict[str, tuple[str, ...]] = {**BUILTIN_PLAYLISTS}
        self._playlists.update({k: tuple(v) for k, v in (playlists or {}).items()})
        self._clock = clock
        self._started = clock()
        self._cache: dict[str, bytes] = {}
        self.base_url = ""

    # -- URLs ------------------------------------------------------------------------------------------------

    def signature(self, route: str) -> str:
        return hmac.new(self._key, route.encode(), hashlib.sha256).hexdigest()[:32]

    def url(self, reference: str) -> str:
        """``media:<route>`` (or a bare route) -> the signed absolute URL on this server."""
        route = reference.removeprefix(MEDIA_SCHEME).lstrip("/")
        path = quote(route, safe="/-._~")
        return f"{self.base_url}{MEDIA_PREFIX}{path}?sig={self.signature(route)}"

    def rewrite(self, value: str) -> str:
        """``media:`` references become signed URLs; anything else is returned unchanged."""
        return self.url(value) if value.startswith(MEDIA_SCHEME) else value

    # -- requests --------------------------------------------------------------------------------------------

    def respond(self, method: str, target: str, headers: Mapping[str, str]) -> PlainResponse:
        """The answer to ``method target`` (``target`` is the request path with its query)."""
        parts = urlsplit(target)
        route = unquote(parts.path.removeprefix(MEDIA_PREFIX))
        if method not in ("GET", "HEAD"):
            return plain_text(405, "only GET and HEAD", (("allow", "GET, HEAD"),))
        query = dict(p.partition("=")[::2] for p in parts.query.split("&") if p)
        if not hmac.compare_digest(query.get("sig", ""), self.signature(route)):
            return plain_text(403, "this media URL is not signed by this emulator")
        try:
            body = self._content(route)
        except LookupError:
            return plain_text(404, f"no such media: {route}")
        ctype = _content_type(route)
        if route == "stall.mp3":
            cut = body[:STALL_BYTES]
            return PlainResponse(200, _base_headers(ctype, len(body)), b"" if method == "HEAD" else cut, stall=True)
        extra: tuple[tuple[str, str], ...] = ()
        if route.startswith("hls/"):
            extra = (("cache-control", "no-cache"),)
        wanted = parse_range(headers.get("range", ""), len(body)) if "range" in headers else None
        if wanted == "unsatisfiable":
            return PlainResponse(416, (("content-range", f"bytes */{len(body)}"), ("content-length", "0")))
        if isinstance(wanted, ByteRange):
            part = body[wanted.start : wanted.end + 1]
            hdrs = (
                *_base_headers(ctype, len(part)),
                ("content-range", f"bytes {wanted.start}-{wanted.end}/{len(body)}"),
                *extra,
            )
            return PlainResponse(206, hdrs, b"" if method == "HEAD" else part)
        return PlainResponse(200, (*_base_headers(ctype, len(body)), *extra), b"" if method == "HEAD" else body)

    def _content(self, route: str) -> bytes:
        if route == "hls/live.m3u8":
            return self._hls_playlist().encode()
        if (m := _HLS_SEGMENT.match(route)) is not None:
            return self._hls_segment(int(m.group(1)))
        if route in self._playlists:
            urls = [self.rewrite(entry) for entry in self._playlists[route]]
            return render_playlist(route, urls).encode()
        cached = self._cache.get(route)
        if cached is not None:
            return cached
        data = self._generate(route)
        self._cache[route] = data
        while len(self._cache) > _CACHE_MAX:
            self._cache.pop(next(iter(self._cache)))
        return data

    def _generate(self, route: str) -> bytes:
        if (m := _TONE.match(route)) is not None:
            freq, seconds = float(m.group(1)), float(m.group(2))
            if not (20.0 <= freq <= 20000.0 and 0.0 < seconds <= _MAX_TONE_S):
                raise LookupError(route)
            return tone_mp3(freq, seconds)
        if (m := _SAY.match(route)) is not None:
            return synthesize_mp3(m.group(1))
        if route == "stall.mp3":
            return tone_mp3(550.0, STALL_TONE_S)
        raise LookupError(route)

    # -- HLS -------------------------------------------------------------------------------------------------

    def live_sequence(self) -> int:
        """The newest segment of the live stream (it advances every HLS_SEGMENT_S of the clock)."""
        return int((self._clock() - self._started) // HLS_SEGMENT_S)

    def _hls_playlist(self) -> str:
        newest = self.live_sequence()
        first = max(0, newest - HLS_WINDOW + 1)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{math.ceil(HLS_SEGMENT_S)}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        for seq in range(first, newest + 1):
            lines += [f"#EXTINF:{HLS_SEGMENT_S:.3f},", self.url(f"hls/{seq}.mp3")]
        return "\n".join(lines) + "\n"

    def _hls_segment(self, seq: int) -> bytes:
        if seq > self.live_sequence():
            raise LookupError(f"hls/{seq}.mp3")  # not produced yet
        freq = _HLS_FREQS[seq % len(_HLS_FREQS)]
        key = f"hls-tone/{freq}"
        audio = self._cache.get(key)
        if audio is None:
            audio = self._cache[key] = tone_mp3(freq, HLS_SEGMENT_S)
        return id3_timestamp(int(seq * HLS_SEGMENT_S * 90000)) + audio


def _base_headers(ctype: str, length: int) -> tuple[tuple[str, str], ...]:
    return (("content-type", ctype), ("content-length", str(length)), ("accept-ranges", "bytes"))
