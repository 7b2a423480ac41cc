"""Audio given to a headless ask -> the Recognize upload's chunks.

Accepted: bytes; an async iterable of byte chunks; a file-like object. A file ends at EOF. An ``io.BytesIO``
with unread bytes at its position (``BytesIO(data)``) is read like a file; one whose position is at its end
(empty, or written to by another thread such as a microphone callback) is read as it grows until it is closed
(or StopCapture, or ``max_s``). A growing BytesIO is never read through its own position (the writer moves that
one); avsd keeps its own offset and polls ``getvalue()``. Bytes written after avsd's last poll (at most
``poll_s`` earlier) and then closed at once are lost with the buffer: wait ``poll_s`` before closing, or end the
stream with a little silence, as speech does anyway.

The audio is 16 kHz mono S16LE PCM, raw or as a WAV (its header is read and checked, then skipped). For
``OPUS`` it is encoded by avsd's encoder (hard CBR, 20 ms packets, each its own DATA frame).
"""

from __future__ import annotations

import asyncio
import io
import struct
import subprocess
from collections.abc import AsyncIterable, AsyncIterator
from typing import BinaryIO

from avsd.audio.opus import OpusEncoder, encode_frames
from avsd.errors import AvsdError

AudioInput = bytes | bytearray | memoryview | BinaryIO | io.BytesIO | AsyncIterable[bytes]

CHUNK_BYTES = 3200  # 100 ms of 16 kHz S16LE per DATA frame when the audio is all there already
BYTES_PER_S = 32000


class AudioInputError(AvsdError, ValueError):
    """The audio handed to an ask cannot be sent (not 16 kHz mono 16-bit PCM, not readable)."""

    code = "audio-input"


async def audio_chunks(
    audio: AudioInput,
    audio_format: str,
    sent: list[int],
    *,
    poll_s: float = 0.01,
    max_s: float = 60.0,
) -> AsyncIterator[bytes]:
    """The upload's chunks; ``sent[0]`` counts the PCM bytes handed over. At most ``max_s`` of audio is sent."""
    pcm = _pcm_only(_raw_chunks(audio, poll_s))
    limit = int(max_s * BYTES_PER_S)

    async def counted() -> AsyncIterator[bytes]:
        async for chunk in pcm:
            room = limit - sent[0]
            if room <= 0:
                return
            chunk = chunk[:room]
            sent[0] += len(chunk)
            yield chunk

    if audio_format == "OPUS":
        async for packet in encode_frames(counted(), OpusEncoder()):
            yield packet
    else:
        async for chunk in counted():
            yield chunk


async def _raw_chunks(audio: AudioInput, poll_s: float) -> AsyncIterator[bytes]:
    if isinstance(audio, bytes | bytearray | memoryview):
        data = bytes(audio)
        for offset in range(0, len(data), CHUNK_BYTES):
            yield data[offset : offset + CHUNK_BYTES]
    elif isinstance(audio, io.BytesIO) and audio.tell() < len(audio.getvalue()):
        # Unread bytes at its position: a prepared buffer (``BytesIO(data)``), read like a file, to its end.
        while chunk := audio.read(CHUNK_BYTES):
            yield chunk
    elif isinstance(audio, io.BytesIO):
        async for chunk in _growing(audio, poll_s):
            yield chunk
    elif hasattr(audio, "read"):
        while True:
            try:
                chunk = await asyncio.to_thread(audio.read, CHUNK_BYTES)
            except (OSError, ValueError) as exc:
                raise AudioInputError(f"cannot read the audio: {exc}") from exc
            if not chunk:
                return
            yield bytes(chunk)
    elif isinstance(audio, AsyncIterable):
        async for chunk in audio:
            yield bytes(chunk)
    else:
        raise AudioInputError(f"audio must be bytes, a file-like object or an async iterable, not {type(audio)}")


async def _growing(buffer: io.BytesIO, poll_s: float) -> AsyncIterator[bytes]:
    offset = 0
    while True:
        if buffer.closed:
            return
        try:
            data = buffer.getvalue()  # one C call under the GIL: a consistent snapshot
        except ValueError:  # closed between the test and the call
            return
        if len(data) > offset:
            for start in range(offset, len(data), CHUNK_BYTES):
                yield data[start : min(start + CHUNK_BYTES, len(data))]
            offset = len(data)
        else:
            await asyncio.sleep(poll_s)


async def _pcm_only(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Skip a WAV header (checking that it is 16 kHz mono 16-bit PCM); pass raw PCM through."""
    head = b""
    async for chunk in chunks:
        head += chunk
        if len(head) < 12 and head == b"RIFF"[: len(head)]:
            continue
        if not head.startswith(b"RIFF"):
            yield head
            break
        offset = _wav_data_offset(head)
        if offset is None:
            continue  # the header is not complete yet
        if offset < len(head):
            yield head[offset:]
        break
    else:
        if head.startswith(b"RIFF"):
            raise AudioInputError("the WAV ends before its data chunk")
        if head:
            yield head
        return
    async for chunk in chunks:
        yield chunk


def _wav_data_offset(head: bytes) -> int | None:
    """Where the samples start, once the header is complete; raises on a WAV that is not 16 kHz mono S16."""
    if head[8:12] != b"WAVE":
        raise AudioInputError("RIFF data that is not a WAV")
    pos = 12
    fmt_ok = False
    while pos + 8 <= len(head):
        chunk_id, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if chunk_id == b"data":
            if not fmt_ok:
                raise AudioInputError("WAV without a fmt chunk before its data")
            return pos + 8
        if chunk_id == b"fmt ":
            if pos + 8 + 16 > len(head):
                return None
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", head, pos + 8)
            if tag not in (1, 0xFFFE) or channels != 1 or rate != 16000 or bits != 16:
                raise AudioInputError(
                    f"the WAV is {rate} Hz, {channels} channel(s), {bits}-bit; AVS takes 16 kHz mono 16-bit PCM "
                    "(convert it first, e.g. avsd.audio.wav_source.load_wav)"
                )
            fmt_ok = True
        pos += 8 + size + (size & 1)
    return None


def text_to_pcm(text: str) -> bytes:
    """Text-to-speech for ``ask_text``/``avsd ask --say``: espeak-ng -> 16 kHz mono S16LE. Blocking."""
    import wave

    from avsd.audio.wav_source import convert
    from avsd.emulator.speech import _espeak_wav

    try:
        wav_bytes = _espeak_wav(text)
    except FileNotFoundError:
        raise AvsdError("text-to-speech needs espeak-ng: apt-get install espeak-ng") from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise AvsdError(f"espeak-ng failed: {exc}") from exc
    with wave.open(io.BytesIO(wav_bytes), "rb") as wav:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        raw = wav.readframes(wav.getnframes())
    return convert(raw, rate=rate, channels=channels, width=width)
