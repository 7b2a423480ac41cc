"""The player seam: what capability agents play, and what they get back.

A :class:`Player` plays one :class:`Media` at a time and hands back a :class:`Playback` for it. Three backends
implement it (chosen by the composition root, :func:`avsd.root.select_player`):

- ``vlc`` (:mod:`avsd.playback.vlcplayer`): libvlc decodes; streams, URLs, playlists, seeking.
- ``pcm`` (:mod:`avsd.playback.pcm`): miniaudio decodes, PortAudio plays. Used when libvlc is missing.
- ``wav`` (:mod:`avsd.playback.pcm`): decodes like ``pcm`` but writes one WAV file per item (``avsd demo``, tests).

Errors: every backend failure is a :class:`~avsd.errors.PlaybackError`; :class:`PlaybackStoppedError` is what
:meth:`Playback.started` raises when the item was stopped before any audio left the player (barge-in), so an
agent can tell "never started because interrupted" from "broken".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from avsd.errors import PlaybackError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "vlc", "pcm", "wav")


class PlaybackStoppedError(PlaybackError):
    """The item was stopped before its first sample left the player."""

    code = "playback-stopped"


class MediaKind(StrEnum):
    STREAM = "stream"
    URL = "url"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class Media:
    """What to play. Build it with :meth:`stream`, :meth:`url` or :meth:`file`."""

    kind: MediaKind
    chunks: AsyncIterable[bytes] | None = None  # STREAM: e.g. an Attachment, read while it is still arriving
    url: str | None = None  # URL (http/https/file) or FILE path
    mime: str = "audio/mpeg"

    @classmethod
    def stream(cls, chunks: AsyncIterable[bytes], mime: str = "audio/mpeg") -> Media:
        return cls(MediaKind.STREAM, chunks=chunks, mime=mime)

    @classmethod
    def from_url(cls, url: str) -> Media:
        return cls(MediaKind.URL, url=url)

    @classmethod
    def file(cls, path: str | Path) -> Media:
        return cls(MediaKind.FILE, url=str(path))

    def describe(self) -> str:
        """Short text for logs (never the bytes)."""
        if self.kind is MediaKind.STREAM:
            return f"stream ({self.mime})"
        return f"{self.kind.value} {self.url}"


# ``url`` is both a field and, in the agreed API, a classmethod. A dataclass field default cannot share the name
# with a method, so the constructor is attached after the class is built; ``Media.url(...)`` works on the class,
# ``media.url`` on an instance is the field (slots keep the instance attribute separate).
def _url_factory(cls: type[Media], url: str) -> Media:
    return cls(MediaKind.URL, url=url)


class _UrlDescriptor:
    """Class access -> constructor, instance access -> the ``url`` field (stored in the slot)."""

    def __init__(self, slot: object) -> None:
        self._slot = slot

    def __get__(self, obj: Media | None, owner: type[Media]) -> object:
        if obj is None:
            return lambda url: _url_factory(owner, url)
        return self._slot.__get__(obj, owner)  # type: ignore[attr-defined]

    def __set__(self, obj: Media, value: str | None) -> None:
        self._slot.__set__(obj, value)  # type: ignore[attr-defined]


setattr(Media, "url", _UrlDescriptor(Media.__dict__["url"]))  # noqa: B010 - mypy must keep the field type


class PlaybackOutcome(StrEnum):
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"


class Playback(Protocol):
    """One item being played."""

    error: PlaybackError | None
    first_audio_time: float | None  # time.perf_counter() when the first sample left the player

    @property
    def offset_ms(self) -> int: ...

    async def started(self) -> None: ...

    async def finished(self) -> PlaybackOutcome: ...

    async def stop(self) -> None: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...


class Player(Protocol):
    name: str  # "vlc" | "pcm" | "wav"

    def play(self, media: Media, *, offset_ms: int = 0) -> Playback: ...

    def set_volume(self, volume: int) -> None: ...

    @property
    def volume(self) -> int: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PlaybackSettings:
    backend: str = field(
        default="auto",
        metadata={"help": "player backend: auto (vlc, else pcm), vlc, pcm, wav", "choices": BACKENDS},
    )
    output_device: str = field(
        default="",
        metadata={"help": "ALSA device for VLC, or PortAudio device name/index for pcm; empty = default"},
    )
    wav_dir: str = field(
        default="", metadata={"help": "directory the wav backend writes one WAV per item into"}
    )
    wav_realtime: bool = field(
        default=False,
        metadata={"help": "the wav backend plays in real time (as a speaker would), not as fast as it decodes"},
    )
    ca_file: str = field(
        default="",
        metadata={"help": "extra CA certificate to trust for https media URLs (the emulator's); empty = system CAs"},
    )
    vlc_options: tuple[str, ...] = field(
        default=(),
        metadata={"help": "extra libvlc options; an --aout option makes VLC play through its own output"},
    )


def check_volume(volume: int) -> int:
    if not 0 <= volume <= 100:
        raise ValueError(f"volume must be 0..100, got {volume}")
    return volume
