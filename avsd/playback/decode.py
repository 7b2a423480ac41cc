"""Incremental decoding with miniaudio, shared by the pcm and wav backends. Runs on a worker thread only.

miniaudio's ``stream_any`` pulls encoded bytes through a :class:`miniaudio.StreamableSource` whose ``read`` may
block and may return fewer bytes than asked (dr_mp3 keeps what it got and asks again), so a speech reply is
decoded while its attachment is still arriving; nothing is written to a temporary file. miniaudio also resamples
and converts channels to the output format, so the output side sees one fixed format per player.
"""

from __future__ import annotations

import logging
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import miniaudio
import numpy as np

from avsd.errors import PlaybackError
from avsd.playback.base import Media, MediaKind
from avsd.playback.stream import StreamBuffer

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 10.0

_MIME_FORMATS = {
    "audio/mpeg": miniaudio.FileFormat.MP3,
    "audio/mp3": miniaudio.FileFormat.MP3,
    "audio/wav": miniaudio.FileFormat.WAV,
    "audio/x-wav": miniaudio.FileFormat.WAV,
    "audio/wave": miniaudio.FileFormat.WAV,
    "audio/flac": miniaudio.FileFormat.FLAC,
    "audio/ogg": miniaudio.FileFormat.VORBIS,
}
_EXT_FORMATS = {
    ".mp3": miniaudio.FileFormat.MP3,
    ".wav": miniaudio.FileFormat.WAV,
    ".flac": miniaudio.FileFormat.FLAC,
    ".ogg": miniaudio.FileFormat.VORBIS,
}


@dataclass(frozen=True, slots=True)
class PcmFormat:
    """Signed 16-bit little-endian interleaved PCM."""

    rate: int = 24000
    channels: int = 1

    @property
    def frame_bytes(self) -> int:
        return 2 * self.channels

    def ms(self, frames: int) -> int:
        return frames * 1000 // self.rate


class DecodeAborted(Exception):
    """The stream was aborted (stop/close) while the decoder waited for bytes."""


def volume_gain(volume: int) -> float:
    """0..100 -> amplitude factor. Cubic, like libvlc's software volume, so backends sound alike at one setting."""
    return (max(0, min(100, volume)) / 100.0) ** 3


def scale_s16(pcm: bytes, gain: float) -> bytes:
    if gain >= 0.9999:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    return (samples * gain).astype("<i2").tobytes()


class _BufferSource(miniaudio.StreamableSource):  # type: ignore[misc]
    def __init__(self, buffer: StreamBuffer) -> None:
        self._buffer = buffer

    def read(self, num_bytes: int) -> bytes:
        data = self._buffer.read(num_bytes)
        if data is None:
            raise DecodeAborted
        return data


class _FileSource(miniaudio.StreamableSource):  # type: ignore[misc]
    """A local file or an HTTP response, read in pieces (seekable only for files)."""

    def __init__(self, handle: IO[bytes], seekable: bool) -> None:
        self._handle = handle
        self._seekable = seekable

    def read(self, num_bytes: int) -> bytes:
        reader: Any = getattr(self._handle, "read1", self._handle.read)
        data: bytes = reader(num_bytes)
        return data

    def seek(self, offset: int, origin: miniaudio.SeekOrigin) -> bool:
        if not self._seekable:
            return False
        whence = os.SEEK_SET if origin == miniaudio.SeekOrigin.START else os.SEEK_CUR
        self._handle.seek(offset, whence)
        return True

    def close(self) -> None:
        self._handle.close()


def _format_for(media: Media) -> miniaudio.FileFormat:
    if media.kind is MediaKind.STREAM or media.url is None:
        return _MIME_FORMATS.get(media.mime, miniaudio.FileFormat.MP3)
    path = urllib.parse.urlparse(media.url).path if media.kind is MediaKind.URL else media.url
    return _EXT_FORMATS.get(os.path.splitext(path)[1].lower(), miniaudio.FileFormat.UNKNOWN)


def open_source(media: Media, buffer: StreamBuffer | None, *, ca_file: str = "") -> miniaudio.StreamableSource:
    """The byte source for ``media`` (blocking: opens files and HTTP connections; https trusts the system CAs
    plus ``ca_file``). Raises PlaybackError."""
    if media.kind is MediaKind.STREAM:
        if buffer is None:
            raise PlaybackError("stream media without a buffer")
        return _BufferSource(buffer)
    if not media.url:
        raise PlaybackError(f"{media.kind.value} media without a url")
    try:
        if media.kind is MediaKind.FILE:
            return _FileSource(open(media.url, "rb"), seekable=True)
        parsed = urllib.parse.urlparse(media.url)
        if parsed.scheme == "file":
            return _FileSource(open(urllib.request.url2pathname(parsed.path), "rb"), seekable=True)
        if parsed.scheme in ("http", "https"):
            # Playlists (M3U/PLS) are the vlc backend's job; this fallback plays direct audio URLs only.
            context = ssl.create_default_context()
            if ca_file:
                context.load_verify_locations(cafile=ca_file)
            response = urllib.request.urlopen(media.url, timeout=HTTP_TIMEOUT_S, context=context)
            return _FileSource(response, seekable=False)
    except OSError as exc:
        raise PlaybackError(f"cannot open {media.describe()}: {exc}") from exc
    raise PlaybackError(f"unsupported url scheme {parsed.scheme!r}")


def decode_pcm(
    media: Media,
    source: miniaudio.StreamableSource,
    fmt: PcmFormat,
    *,
    skip_ms: int = 0,
    block_frames: int = 1024,
) -> Iterator[bytes]:
    """Blocks of PCM in ``fmt``, the first ``skip_ms`` dropped. Raises PlaybackError on undecodable input and
    DecodeAborted when the stream was aborted.

    Known limit of miniaudio's streaming MP3 decoder: the last MP3 frame (~26-52 ms) is not produced, although
    ``miniaudio.decode`` of the same bytes has it (tests/test_pipeline.py measures it). The VLC backend is not
    affected; for a Speak the lost frame is the tail of the trailing silence."""
    try:
        blocks = miniaudio.stream_any(
            source,
            _format_for(media),
            output_format=miniaudio.SampleFormat.SIGNED16,
            nchannels=fmt.channels,
            sample_rate=fmt.rate,
            frames_to_read=block_frames,
        )
    except miniaudio.MiniaudioError as exc:
        _raise_source_error(source)
        raise PlaybackError(f"cannot decode {media.describe()}: {exc}") from exc
    skip = skip_ms * fmt.rate // 1000 * fmt.frame_bytes
    try:
        for block in blocks:
            pcm = block.tobytes()
            if skip:
                cut = min(skip, len(pcm))
                skip -= cut
                pcm = pcm[cut:]
            if pcm:
                yield pcm
    except miniaudio.MiniaudioError as exc:
        _raise_source_error(source)
        raise PlaybackError(f"decoding {media.describe()} failed: {exc}") from exc
    finally:
        blocks.close()
        source.close()
    _raise_source_error(source)


def _raise_source_error(source: miniaudio.StreamableSource) -> None:
    # miniaudio catches exceptions raised in read() and reports them as a decoder error / end of data.
    error = source.error_in_readcallback
    if isinstance(error, DecodeAborted):
        raise DecodeAborted
    if error is not None:
        raise PlaybackError(f"reading audio failed: {error}") from error
