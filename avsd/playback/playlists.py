"""Playlist parsing for AudioPlayer stream URLs (protocol reference §6.3; field-notes §2, "Streams and
playlists").

Radio URLs from AVS (TuneIn, iHeart) are often playlists, not audio: M3U/M3U8, PLS, ASX or the Windows Media
``[Reference]`` file. The parsers are pure; ``resolve()`` adds the fetching through a seam and returns the
candidate stream URLs in order, so the player can try the next one when one fails (PLS files list mirrors).

- HLS (an M3U8 with ``#EXT-X-`` tags) is *not* expanded: its segments are not alternative streams, the player
  plays the ``.m3u8`` URL itself.
- Relative entries are resolved against the playlist URL; entries with schemes other than the network ones
  below (``file:``, ``javascript:``, bare local paths without a base) are dropped, so a remote playlist can
  never make the device open a local file.
- Bad input raises ``PlaylistError`` (a ``ValueError``) and nothing else.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Awaitable, Callable
from enum import StrEnum
from urllib.parse import urljoin, urlsplit

from avsd.errors import PlaybackError

log = logging.getLogger(__name__)

STREAM_SCHEMES = frozenset({"http", "https", "mms", "mmsh", "mmst", "rtsp", "rtmp", "icy"})
MAX_PLAYLIST_BYTES = 512 * 1024  # a playlist is text; anything bigger is a stream or junk


class PlaylistError(PlaybackError, ValueError):
    """A playlist could not be parsed, or held no playable entry."""

    code = "playlist-invalid"


class PlaylistKind(StrEnum):
    M3U = "m3u"
    HLS = "hls"
    PLS = "pls"
    ASX = "asx"
    REFERENCE = "reference"  # Windows Media "[Reference]" / Ref1=
    NONE = "none"  # not a playlist: hand the URL to the player as is


_TYPE_KINDS = {
    "audio/x-mpegurl": PlaylistKind.M3U,
    "audio/mpegurl": PlaylistKind.M3U,
    "application/x-mpegurl": PlaylistKind.M3U,
    "application/vnd.apple.mpegurl": PlaylistKind.M3U,
    "audio/m3u": PlaylistKind.M3U,
    "audio/x-m3u": PlaylistKind.M3U,
    "audio/x-scpls": PlaylistKind.PLS,
    "audio/scpls": PlaylistKind.PLS,
    "application/pls+xml": PlaylistKind.PLS,
    "audio/x-pls": PlaylistKind.PLS,
    "video/x-ms-asx": PlaylistKind.ASX,
    "audio/x-ms-asx": PlaylistKind.ASX,
    "video/x-ms-wvx": PlaylistKind.ASX,
    "audio/x-ms-wax": PlaylistKind.ASX,
    "video/x-ms-asf": PlaylistKind.ASX,  # also real ASF media: the first bytes decide (see detect)
}
_EXT_KINDS = {
    ".m3u": PlaylistKind.M3U,
    ".m3u8": PlaylistKind.M3U,
    ".pls": PlaylistKind.PLS,
    ".asx": PlaylistKind.ASX,
    ".wax": PlaylistKind.ASX,
    ".wvx": PlaylistKind.ASX,
}
_ASF_MAGIC = bytes.fromhex("3026b2758e66cf11")
_HLS_TAGS = ("#EXT-X-STREAM-INF", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE", "#EXT-X-VERSION",
             "#EXT-X-KEY", "#EXT-X-MAP", "#EXT-X-ENDLIST", "#EXT-X-PLAYLIST-TYPE")


def _text(body: bytes) -> str:
    # utf-8-sig drops a BOM; "replace" keeps garbage from raising (Latin-1 titles are common in PLS files).
    return body[:MAX_PLAYLIST_BYTES].decode("utf-8-sig", errors="replace")


def _head(body: bytes) -> str:
    return _text(body[:256]).lstrip().lower()


def _url_ext(url: str) -> str:
    try:
        path = urlsplit(url).path.lower()
    except ValueError:  # urllib rejects e.g. an unbalanced "[" in the host part
        return ""
    dot = path.rfind(".")
    return path[dot:] if dot > path.rfind("/") else ""


def looks_like_playlist_url(url: str) -> bool:
    """By extension only: used to decide which *entries* of a playlist are worth fetching."""
    return _url_ext(url) in _EXT_KINDS


def _looks_textual(body: bytes) -> bool:
    sample = body[:1024]
    return b"\x00" not in sample and sample.decode("utf-8", errors="replace").count("\ufffd") <= 2


def detect(content_type: str | None, body: bytes, url: str = "") -> PlaylistKind:
    """Decide what ``body`` is. Decisive first bytes win over the content type, then over the extension."""
    head = _head(body)
    if head.startswith("#extm3u"):
        return PlaylistKind.HLS if _is_hls(_text(body)) else PlaylistKind.M3U
    if head.startswith("[playlist]"):
        return PlaylistKind.PLS
    if head.startswith("[reference]"):
        return PlaylistKind.REFERENCE
    if head.startswith("<asx") or (head.startswith("<?xml") and "<asx" in head):
        return PlaylistKind.ASX
    if body.startswith(_ASF_MAGIC) or not _looks_textual(body):
        return PlaylistKind.NONE
    mime = (content_type or "").split(";")[0].strip().lower()
    kind = _TYPE_KINDS.get(mime)
    if kind is None and mime in ("", "text/plain", "application/octet-stream", "binary/octet-stream"):
        kind = _EXT_KINDS.get(_url_ext(url))
        if kind is None:
            # Servers that do not know better serve M3U as text/plain: every line a URL or a comment.
            lines = [ln.strip() for ln in _text(body).splitlines() if ln.strip()]
            urls = [ln for ln in lines if not ln.startswith("#")]
            if urls and all("://" in ln for ln in urls):
                kind = PlaylistKind.M3U
    if kind is PlaylistKind.M3U and _is_hls(_text(body)):
        return PlaylistKind.HLS
    return kind or PlaylistKind.NONE


def _is_hls(text: str) -> bool:
    return any(line.lstrip().upper().startswith(_HLS_TAGS) for line in text.splitlines())


_ABSOLUTE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://[^\s]+")


def _accept(entry: str, base_url: str) -> str | None:
    entry = entry.strip()
    if not entry:
        return None
    absolute = _ABSOLUTE.fullmatch(entry)
    if absolute:  # the common case; urllib's join/split would cost ~10x more (bench: 5000-entry PLS files)
        return entry if absolute.group(1).lower() in STREAM_SCHEMES else None
    try:
        url = urljoin(base_url, entry) if base_url else entry
        scheme = urlsplit(url).scheme.lower()
    except ValueError:  # e.g. an unbalanced "[" in the host part
        return None
    if scheme not in STREAM_SCHEMES or any(c in url for c in "\r\n\t"):
        return None
    return url


def _unique(urls: list[str | None]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for url in urls:
        if url is not None and url not in seen:
            seen.add(url)
            out.append(url)
    return out


_STATUS = re.compile(r"^#\s*STATUS\s*:\s*(\d+)", re.IGNORECASE)


def parse_m3u(text: str, base_url: str = "") -> list[str]:
    entries: list[str | None] = []
    status: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            # TuneIn answers bad station ids with only "#STATUS: 400" (avs-device-sdk#1597).
            match = _STATUS.match(line)
            if match:
                status = match.group(1)
            continue
        entries.append(_accept(line, base_url))
    urls = _unique(entries)
    if not urls and status is not None:
        raise PlaylistError(f"the playlist server answered status {status}")
    return urls


def _numbered(text: str, key: str, base_url: str) -> list[str]:
    """PLS ``FileN=`` / Reference ``RefN=`` lines, ordered by N (the file may list them in any order)."""
    pattern = re.compile(rf"^\s*{key}\s*(\d{{1,9}})\s*=(.*)$", re.IGNORECASE)
    numbered: list[tuple[int, int, str]] = []
    for pos, line in enumerate(text.splitlines()):
        match = pattern.match(line)
        if match:
            numbered.append((int(match.group(1)), pos, match.group(2)))
    numbered.sort()
    # NumberOfEntries is advisory: many servers get it wrong, so the FileN lines are the truth.
    return _unique([_accept(value, base_url) for _, _, value in numbered])


def parse_pls(text: str, base_url: str = "") -> list[str]:
    return _numbered(text, "file", base_url)


def parse_reference(text: str, base_url: str = "") -> list[str]:
    return _numbered(text, "ref", base_url)


_ASX_REF = re.compile(r"<\s*(ref|entryref)\b[^>]*?\bhref\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)", re.IGNORECASE)


def parse_asx(text: str, base_url: str = "") -> list[str]:
    # ASX in the wild is rarely well-formed XML (unescaped "&", mixed-case tags), so a tolerant regex instead
    # of an XML parser; it also sidesteps entity-expansion attacks.
    urls: list[str | None] = []
    for match in _ASX_REF.finditer(text):
        value = match.group(2).strip("\"'")
        urls.append(_accept(html.unescape(value), base_url))
    return _unique(urls)


def parse_playlist(body: bytes, content_type: str | None = None, base_url: str = "") -> list[str]:
    """Entries of a playlist body, in order. ``[base_url]`` for HLS or non-playlists.

    Raises PlaylistError when it is a playlist without a usable entry.
    """
    kind = detect(content_type, body, base_url)
    if kind in (PlaylistKind.NONE, PlaylistKind.HLS):
        return [base_url] if base_url else []
    if len(body) > MAX_PLAYLIST_BYTES:
        log.warning("playlist %s is %d bytes; reading the first %d", base_url, len(body), MAX_PLAYLIST_BYTES)
    text = _text(body)
    parser = {
        PlaylistKind.M3U: parse_m3u,
        PlaylistKind.PLS: parse_pls,
        PlaylistKind.ASX: parse_asx,
        PlaylistKind.REFERENCE: parse_reference,
    }[kind]
    urls = parser(text, base_url)
    if not urls:
        raise PlaylistError(f"{kind} playlist has no playable entry")
    return urls


Fetch = Callable[[str], Awaitable[tuple[str, bytes]]]


async def resolve(url: str, fetch: Fetch, *, max_depth: int = 3, max_urls: int = 64) -> list[str]:
    """Candidate stream URLs for ``url``, in the order to try them.

    ``fetch(url)`` returns ``(content_type, first bytes of the body)``; it must stop reading after a bounded
    prefix (``MAX_PLAYLIST_BYTES`` is plenty), because ``url`` may be an endless audio stream. The top-level
    fetch's errors propagate; a nested playlist that cannot be fetched or parsed is skipped with a warning.
    Only entries whose URL ends like a playlist (.m3u, .pls, ...) are fetched again, up to ``max_depth``.
    """
    out: list[str] = []
    visited: set[str] = set()

    def add(candidate: str) -> None:
        if candidate not in out and len(out) < max_urls:
            out.append(candidate)

    async def visit(target: str, depth: int) -> None:
        visited.add(target)
        content_type, body = await fetch(target)
        entries = parse_playlist(body, content_type, target)
        if entries == [target]:  # not a playlist, or HLS
            add(target)
            return
        for entry in entries:
            if len(out) >= max_urls:
                return
            if depth < max_depth and entry not in visited and looks_like_playlist_url(entry):
                try:
                    await visit(entry, depth + 1)
                except Exception as exc:  # a dead mirror must not hide the other entries
                    log.warning("skipping nested playlist %s: %s", entry, exc)
            else:
                add(entry)

    await visit(url, 0)
    if not out:
        raise PlaylistError(f"no playable stream in {url}")
    return out
