"""Music from a local folder: the library (tags or file names), and a loopback HTTP server the device's
AudioPlayer fetches the files from.

The local AVS server speaks HTTP/2 + TLS with its own CA, which the AudioPlayer's plain HTTP fetch does not
trust; music is therefore served by this small HTTP/1.1 server (GET and HEAD, single byte ranges for seeking),
bound to 127.0.0.1, each URL carrying a random secret (so another local user cannot list the folder).
Broken files are skipped with a log line at scan time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import miniaudio

from avsd.assistant.grammar import normalize_name
from avsd.emulator.scenario import DirectiveSpec

_log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".mp3", ".flac", ".wav", ".ogg")
_TEXT_FRAMES = {"TIT2": "title", "TPE1": "artist", "TALB": "album", "TT2": "title", "TP1": "artist", "TAL": "album"}
_MAX_HEADER = 8192


@dataclass(frozen=True, slots=True)
class Track:
    token: str
    path: Path
    title: str
    artist: str = ""
    album: str = ""


def id3_tags(path: Path) -> dict[str, str]:
    """Title/artist/album from an ID3v2.2-2.4 header (text frames only; anything odd -> no tags)."""
    try:
        with path.open("rb") as f:
            head = f.read(10)
            if len(head) < 10 or head[:3] != b"ID3":
                return {}
            version = head[3]
            size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
            body = f.read(min(size, 256 * 1024))
    except OSError:
        return {}
    tags: dict[str, str] = {}
    pos, id_len, hdr_len = 0, (3 if version == 2 else 4), (6 if version == 2 else 10)
    while pos + hdr_len <= len(body):
        frame_id = body[pos : pos + id_len].decode("latin-1", errors="replace")
        if not frame_id.strip("\x00"):
            break
        raw = body[pos + id_len : pos + id_len + (3 if version == 2 else 4)]
        if version == 4:
            frame_size = (raw[0] & 0x7F) << 21 | (raw[1] & 0x7F) << 14 | (raw[2] & 0x7F) << 7 | (raw[3] & 0x7F)
        else:
            frame_size = int.from_bytes(raw, "big")
        data = body[pos + hdr_len : pos + hdr_len + frame_size]
        pos += hdr_len + frame_size
        if frame_id in _TEXT_FRAMES and data:
            encoding, text = data[0], data[1:]
            codec = {0: "latin-1", 1: "utf-16", 2: "utf-16-be", 3: "utf-8"}.get(encoding, "latin-1")
            value = text.decode(codec, errors="replace").strip("\x00").strip()
            if value:
                tags[_TEXT_FRAMES[frame_id]] = value
    return tags


class MusicLibrary:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tracks: list[Track] = []
        self.skipped: list[Path] = []
        self.scan()

    def scan(self) -> None:
        tracks: list[Track] = []
        self.skipped = []
        if not self.folder.is_dir():
            _log.warning("music folder %s does not exist", self.folder)
            self.tracks = []
            return
        for path in sorted(self.folder.rglob("*")):
            if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
                continue
            try:
                miniaudio.get_file_info(str(path))
            except (miniaudio.MiniaudioError, OSError) as exc:
                _log.warning("music: skipping %s (not playable: %s)", path.name, exc)
                self.skipped.append(path)
                continue
            tags = id3_tags(path)
            stem = path.stem.replace("_", " ")
            artist, _, title = stem.partition(" - ") if " - " in stem else ("", "", stem)
            if artist.strip().isdigit():  # "01 - Song": a track number, not an artist
                artist = ""
            title = re.sub(r"^\d+[\s.-]+", "", title).strip() or stem  # "01 - Song" / "01. Song"
            album = path.parent.name if path.parent != self.folder else ""
            tracks.append(
                Track(
                    f"avsd-assistant.music.{len(tracks)}.{secrets.token_hex(4)}",
                    path,
                    tags.get("title", title),
                    tags.get("artist", artist),
                    tags.get("album", album),
                )
            )
        self.tracks = tracks
        _log.info("music: %d tracks in %s (%d skipped)", len(tracks), self.folder, len(self.skipped))

    def names(self) -> list[str]:
        return [n for t in self.tracks for n in (t.title, t.artist, t.album) if n]

    def find(self, query: str) -> Track | None:
        """The first track whose title, artist or album is the query; else one that contains it."""
        q = normalize_name(query)
        for fields in (("title",), ("artist", "album")):
            for t in self.tracks:
                if any(normalize_name(getattr(t, f)) == q for f in fields):
                    return t
        for t in self.tracks:
            if any(q and q in normalize_name(getattr(t, f)) for f in ("title", "artist", "album")):
                return t
        return None

    def by_token(self, token: str) -> Track | None:
        return next((t for t in self.tracks if t.token == token), None)

    def _index(self, token: str) -> int | None:
        return next((i for i, t in enumerate(self.tracks) if t.token == token), None)

    def after(self, token: str) -> Track | None:
        i = self._index(token)
        if not self.tracks:
            return None
        return self.tracks[0] if i is None else (self.tracks[i + 1] if i + 1 < len(self.tracks) else None)

    def before(self, token: str) -> Track | None:
        i = self._index(token)
        if not self.tracks:
            return None
        return self.tracks[0] if i is None else self.tracks[max(i - 1, 0)]


class MusicServer:
    """GET/HEAD ``/music/<secret>/<index><suffix>`` on 127.0.0.1 (single byte range supported)."""

    def __init__(self, library: MusicLibrary, host: str = "127.0.0.1", port: int = 0) -> None:
        self.library = library
        self.host, self.port = host, port
        self._secret = secrets.token_urlsafe(16)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            self._server = None

    def url(self, track: Track) -> str:
        index = self.library.tracks.index(track)
        return f"http://{self.host}:{self.port}/music/{self._secret}/{index}{track.path.suffix.lower()}"

    def play(
        self, track: Track, behavior: str, *, expected_previous: str | None = None, offset_ms: int = 0
    ) -> DirectiveSpec:
        stream: dict[str, object] = {
            "url": self.url(track),
            "token": track.token,
            "offsetInMilliseconds": offset_ms,
            "expiryTime": "2099-01-01T00:00:00+0000",
        }
        if expected_previous:
            stream["expectedPreviousToken"] = expected_previous
        payload = {"playBehavior": behavior, "audioItem": {"audioItemId": track.token, "stream": stream}}
        return DirectiveSpec("AudioPlayer", "Play", payload)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10.0):
                head = await reader.readuntil(b"\r\n\r\n")
            await self._answer(head, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError) as exc:
            _log.debug("music server: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, head: bytes, writer: asyncio.StreamWriter) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        m = re.fullmatch(r"/music/([\w-]+)/(\d+)\.\w+", parts[1] if len(parts) == 3 else "")
        track = None
        if m and secrets.compare_digest(m.group(1), self._secret) and int(m.group(2)) < len(self.library.tracks):
            track = self.library.tracks[int(m.group(2))]
        if parts[0] not in ("GET", "HEAD") or track is None:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        data = track.path.read_bytes()
        status, start, end = "200 OK", 0, len(data) - 1
        rng = re.fullmatch(r"bytes=(\d*)-(\d*)", headers.get("range", ""))
        if rng and (rng.group(1) or rng.group(2)):
            if rng.group(1):
                start, end = int(rng.group(1)), int(rng.group(2)) if rng.group(2) else len(data) - 1
            else:
                start = max(len(data) - int(rng.group(2)), 0)
            end = min(end, len(data) - 1)
            if start > end:
                writer.write(
                    f"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len(data)}\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
                )
                return
            status = "206 Partial Content"
        ctype = mimetypes.guess_type(track.path.name)[0] or "application/octet-stream"
        if track.path.suffix.lower() == ".mp3":
            ctype = "audio/mpeg"
        hdr = [
            f"HTTP/1.1 {status}",
            f"Content-Type: {ctype}",
            f"Content-Length: {end - start + 1}",
            "Accept-Ranges: bytes",
            "Connection: close",
        ]
        if status.startswith("206"):
            hdr.append(f"Content-Range: bytes {start}-{end}/{len(data)}")
        writer.write(("\r\n".join(hdr) + "\r\n\r\n").encode())
        if parts[0] == "GET":
            writer.write(data[start : end + 1])
        await writer.drain()
