"""Opus for the Recognize upload (``format: "OPUS"``, protocol reference §4.3), over ``opuslib-next`` + libopus.

AVS takes Opus at 16 kHz mono, hard CBR at 32 or 64 kbps, complexity 4, 20 ms per packet, and wants each packet
in its own HTTP/2 DATA frame: exactly 80 bytes (32 kbps) or 160 bytes (64 kbps). The device's 10 ms frames are
paired up, two to a packet; the last odd frame is padded with 10 ms of silence. ``wakeWordIndices`` keep
counting samples of the audio, so nothing upstream changes.

Application VOIP, not AUDIO: the upload is speech for a recognizer. VOIP keeps libopus in its speech coder
(SILK, wideband at 16 kHz) with the high-pass filter that removes the DC offset and rumble of cheap microphones;
AUDIO at 32 kbps switches to the waveform coder (CELT), which spends bits on fidelity a recognizer does not need.
VOIP costs more CPU (bench/bench_opus.py measures both); it is still a small share of a core.

The emulator side (:class:`OpusStreamDecoder`) splits an upload into packets and decodes them back to PCM for its
endpointer. An upload carries no packet length, so the size is derived from the first packets: only 80 and 160
are accepted (the two the protocol allows), and a size fits when every packet boundary in the first
``_PROBE_PACKETS`` starts a mono 20 ms table-of-contents byte (RFC 6716 §3.1); the smaller size is tried first,
because a stream of 80-byte packets also looks right when cut every 160 bytes.

Errors: a missing binding or libopus raises :class:`OpusUnavailableError` (a ConfigError naming the key: the
configuration asks for what this install cannot do; exit 78) when the daemon starts, never mid-dialog. A stream
that is not CBR Opus raises :class:`OpusStreamError`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from avsd.audio.frames import FRAME_BYTES, SAMPLE_RATE
from avsd.errors import AudioDeviceError, AvsdError, ConfigError

_LOGGER = logging.getLogger(__name__)

OPUS_FORMAT = "OPUS"
BITRATES = (32000, 64000)
COMPLEXITY = 4  # AVS's codec table
PACKET_MS = 20
PACKET_SAMPLES = SAMPLE_RATE * PACKET_MS // 1000  # 320
PACKET_PCM_BYTES = PACKET_SAMPLES * 2  # 640: two 10 ms frames
PACKET_SIZES = tuple(bitrate * PACKET_MS // 1000 // 8 for bitrate in BITRATES)  # (80, 160)
_PROBE_PACKETS = 8
_INSTALL_HINT = "install libopus (`sudo apt install libopus0`) and the binding (`pip install opuslib-next`)"


class OpusUnavailableError(ConfigError):
    """``dialog.audio_format = "OPUS"`` but the Opus binding or libopus cannot be loaded."""

    code = "opus-unavailable"


class OpusStreamError(AvsdError, ValueError):
    """Bytes that are not a 16 kHz mono 20 ms CBR Opus stream of 80- or 160-byte packets."""

    code = "opus-malformed"


def packet_bytes(bitrate: int) -> int:
    """The CBR packet size for ``bitrate`` (32000 -> 80, 64000 -> 160)."""
    if bitrate not in BITRATES:
        raise ValueError(f"Opus bitrate must be one of {BITRATES}, not {bitrate}")
    return bitrate * PACKET_MS // 1000 // 8


def _load() -> Any:
    """The ``opuslib_next`` module, or OpusUnavailableError. Its import fails with a bare Exception (not an
    ImportError) when libopus is missing, so both are translated here, once."""
    try:
        import opuslib_next
    except ImportError as exc:
        raise OpusUnavailableError("dialog.audio_format", f"OPUS needs opuslib-next: {_INSTALL_HINT}") from exc
    except Exception as exc:  # "Could not find Opus library" or an OSError from ctypes.CDLL
        raise OpusUnavailableError("dialog.audio_format", f"OPUS needs libopus ({exc}): {_INSTALL_HINT}") from exc
    return opuslib_next


def require_opus() -> None:
    """Fail now (at start-up) when OPUS is configured but cannot work."""
    _load()


# ----- the pure part: the table-of-contents byte ---------------------------------------------------------------


def packet_duration_tenths_ms(packet: bytes) -> int | None:
    """Duration of an Opus packet in tenths of a millisecond from its TOC byte (RFC 6716 §3.1); None when the
    header is cut short or malformed. 20 ms -> 200."""
    if not packet:
        return None
    toc = packet[0]
    config, code = toc >> 3, toc & 0x3
    if config < 12:  # SILK-only: 10/20/40/60 ms
        frame = (100, 200, 400, 600)[config % 4]
    elif config < 16:  # hybrid: 10/20 ms
        frame = (100, 200)[config % 2]
    else:  # CELT-only: 2.5/5/10/20 ms
        frame = (25, 50, 100, 200)[config % 4]
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        if len(packet) < 2:
            return None
        count = packet[1] & 0x3F
        if count == 0:
            return None
    return frame * count


def _is_mono_20ms(packet: bytes) -> bool:
    return bool(packet) and not packet[0] & 0x4 and packet_duration_tenths_ms(packet) == PACKET_MS * 10


def detect_packet_size(head: bytes, *, final: bool = False) -> int | None:
    """The CBR packet size (80 or 160) of a stream starting with ``head``; None until enough bytes are in.

    Decided once ``_PROBE_PACKETS`` 80-byte packets are in (or the stream ended: ``final``). Raises
    OpusStreamError when neither size fits.
    """
    if not final and len(head) < _PROBE_PACKETS * PACKET_SIZES[0]:
        return None
    for size in PACKET_SIZES:
        if len(head) < size:
            continue
        starts = range(0, min(len(head), _PROBE_PACKETS * size) - size + 1, size)
        if all(_is_mono_20ms(head[offset : offset + 2]) for offset in starts):
            return size
    raise OpusStreamError(f"not 20 ms mono CBR Opus in {'/'.join(map(str, PACKET_SIZES))}-byte packets")


# ----- encoder (device) -----------------------------------------------------------------------------------------


class OpusEncoder:
    """16 kHz mono, VOIP, hard CBR, complexity 4, 20 ms packets. One per Recognize (the codec keeps state)."""

    def __init__(self, bitrate: int = BITRATES[0]) -> None:
        self.packet_bytes = packet_bytes(bitrate)
        opuslib = _load()
        self._encoder = opuslib.Encoder(SAMPLE_RATE, 1, opuslib.APPLICATION_VOIP)
        self._encoder.bitrate = bitrate
        self._encoder.vbr = 0  # hard CBR: every packet exactly packet_bytes long
        self._encoder.complexity = COMPLEXITY
        self._encoder.signal = opuslib.SIGNAL_VOICE
        self._error: type[Exception] = opuslib.OpusError
        self._pending = b""  # an odd 10 ms frame waiting for its partner

    def encode(self, pcm: bytes) -> bytes:
        """One packet from exactly 20 ms (640 bytes) of PCM."""
        if len(pcm) != PACKET_PCM_BYTES:
            raise ValueError(f"expected {PACKET_PCM_BYTES} bytes of PCM, got {len(pcm)}")
        try:
            packet: bytes = self._encoder.encode(pcm, PACKET_SAMPLES)
        except self._error as exc:
            raise AudioDeviceError(f"Opus encoder failed: {exc}") from exc
        if len(packet) != self.packet_bytes:  # hard CBR guarantees it; a wrong size would break the upload
            raise AudioDeviceError(f"Opus encoder made a {len(packet)}-byte packet, not {self.packet_bytes}")
        return packet

    def feed(self, pcm: bytes) -> list[bytes]:
        """Any amount of PCM in, the whole packets it completes out."""
        data = self._pending + pcm if self._pending else pcm
        whole = len(data) - len(data) % PACKET_PCM_BYTES
        self._pending = data[whole:]
        return [self.encode(data[offset : offset + PACKET_PCM_BYTES]) for offset in range(0, whole, PACKET_PCM_BYTES)]

    def flush(self) -> list[bytes]:
        """The last packet, its missing part filled with silence (none when nothing is pending)."""
        if not self._pending:
            return []
        pcm, self._pending = self._pending, b""
        return [self.encode(pcm + bytes(PACKET_PCM_BYTES - len(pcm)))]


async def encode_frames(frames: AsyncIterable[bytes], encoder: OpusEncoder) -> AsyncIterator[bytes]:
    """The Recognize audio as Opus: each packet yielded on its own, so it goes out as its own DATA frame."""
    async for frame in frames:
        for packet in encoder.feed(frame):
            yield packet
    for packet in encoder.flush():
        yield packet


# ----- decoder (emulator) ---------------------------------------------------------------------------------------


class OpusStreamDecoder:
    """An uploaded Opus stream, in chunks of any size, back to 16 kHz PCM."""

    def __init__(self) -> None:
        opuslib = _load()
        self._decoder = opuslib.Decoder(SAMPLE_RATE, 1)
        self._error: type[Exception] = opuslib.OpusError
        self._buffer = bytearray()
        self.packet_bytes: int | None = None
        self.packets = 0

    def feed(self, data: bytes) -> bytes:
        """Bytes of the upload in, the PCM of the whole packets they complete out."""
        self._buffer += data
        if self.packet_bytes is None:
            self.packet_bytes = detect_packet_size(bytes(self._buffer))
            if self.packet_bytes is None:
                return b""
        return self._drain()

    def finish(self) -> bytes:
        """The end of the upload: the PCM still held back. A cut-off last packet is an error."""
        if self.packet_bytes is None:
            if not self._buffer:
                return b""
            self.packet_bytes = detect_packet_size(bytes(self._buffer), final=True)
        pcm = self._drain()
        if self._buffer:
            raise OpusStreamError(f"upload ends inside a packet ({len(self._buffer)} of {self.packet_bytes} bytes)")
        return pcm

    def _drain(self) -> bytes:
        size = self.packet_bytes
        assert size is not None
        whole = len(self._buffer) - len(self._buffer) % size
        out = bytearray()
        for offset in range(0, whole, size):
            out += self.decode(bytes(self._buffer[offset : offset + size]))
        del self._buffer[:whole]
        return bytes(out)

    def decode(self, packet: bytes) -> bytes:
        if not _is_mono_20ms(packet):
            raise OpusStreamError(f"packet {self.packets} is not a mono 20 ms Opus packet")
        try:
            pcm: bytes = self._decoder.decode(packet, PACKET_SAMPLES)
        except self._error as exc:
            raise OpusStreamError(f"packet {self.packets} does not decode: {exc}") from exc
        if len(pcm) != PACKET_PCM_BYTES:
            raise OpusStreamError(f"packet {self.packets} decodes to {len(pcm) // 2} samples, not {PACKET_SAMPLES}")
        self.packets += 1
        return pcm


assert PACKET_PCM_BYTES == 2 * FRAME_BYTES  # two device frames per packet
