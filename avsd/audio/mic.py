"""Microphone capture through PyAudio (PortAudio -> ALSA).

Threading: PortAudio calls ``_callback`` on its own thread. The callback never blocks and never touches the
queue: it hands each buffer to the event loop with ``loop.call_soon_threadsafe``; the loop side puts it in a
bounded queue and, when the consumer falls behind, drops the OLDEST frame (fresh audio matters more for a wake
word than stale audio) and counts it. Overruns reported by PortAudio and drops are logged at most every
``_LOG_INTERVAL_S``. ``last_frame_time`` (monotonic) lets a watchdog notice a device that silently stopped.

PyAudio and device errors are translated to :class:`~avsd.errors.AudioDeviceError` here, with a message that
says what to install or which devices exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from avsd.audio.frames import FRAME_BYTES, FRAME_SAMPLES, IDLE_BLOCK_FRAMES, SAMPLE_RATE
from avsd.audio.resample import StreamResampler
from avsd.audio.wav_source import to_mono, to_s16
from avsd.errors import AudioDeviceError

_LOGGER = logging.getLogger(__name__)
_LOG_INTERVAL_S = 10.0
_INSTALL_HINT = "install PortAudio and PyAudio: `sudo apt install portaudio19-dev` then `pip install pyaudio`"


@dataclass(frozen=True, slots=True)
class AudioDeviceInfo:
    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate: float


def _pyaudio() -> Any:
    try:
        import pyaudio
    except ImportError as exc:
        raise AudioDeviceError(f"PyAudio is not available ({exc}); {_INSTALL_HINT}") from exc
    return pyaudio


def _devices(pa: Any) -> list[AudioDeviceInfo]:
    out = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        out.append(
            AudioDeviceInfo(
                index=i,
                name=str(info["name"]),
                max_input_channels=int(info["maxInputChannels"]),
                max_output_channels=int(info["maxOutputChannels"]),
                default_sample_rate=float(info["defaultSampleRate"]),
            )
        )
    return out


def list_devices() -> list[AudioDeviceInfo]:
    """Every PortAudio device (inputs and outputs)."""
    pyaudio = _pyaudio()
    pa = pyaudio.PyAudio()
    try:
        return _devices(pa)
    finally:
        pa.terminate()


def _describe_inputs(devices: list[AudioDeviceInfo]) -> str:
    inputs = [f"{d.index}: {d.name}" for d in devices if d.max_input_channels > 0]
    return "input devices: " + ("; ".join(inputs) if inputs else "none (is a microphone plugged in?)")


def resolve_device(devices: list[AudioDeviceInfo], device: str | int | None) -> AudioDeviceInfo | None:
    """Pick a device by index or case-insensitive name substring; None means the default input."""
    if device is None:
        return None
    inputs = [d for d in devices if d.max_input_channels > 0]
    if isinstance(device, int):
        for d in inputs:
            if d.index == device:
                return d
        raise AudioDeviceError(f"no input device with index {device}; {_describe_inputs(devices)}")
    matches = [d for d in inputs if device.lower() in d.name.lower()]
    if not matches:
        raise AudioDeviceError(f"no input device matching {device!r}; {_describe_inputs(devices)}")
    return matches[0]


class FrameBuffer:
    """Blocks of whole 10 ms frames, bounded in frames: beyond ``max_frames`` the oldest frames are dropped.

    Bounded in frames, not in blocks: blocks are 10 frames while idle and 1 frame while listening, so a bound of
    20 blocks held 2 s of audio while idle but only 200 ms while the user spoke. Pure: the loop side of the
    microphone pushes and pops; the caller counts what was dropped.
    """

    def __init__(self, max_frames: int) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be >= 1")
        self.max_frames = max_frames
        self._blocks: deque[bytes] = deque()
        self._frames = 0

    def __len__(self) -> int:
        """Frames held."""
        return self._frames

    def push(self, block: bytes) -> int:
        """Add a block (a whole number of frames); returns how many of the oldest frames were dropped for it."""
        if not block:
            return 0
        self._blocks.append(block)
        self._frames += len(block) // FRAME_BYTES
        dropped = 0
        while self._frames > self.max_frames:
            excess = self._frames - self.max_frames
            head = self._blocks[0]
            head_frames = len(head) // FRAME_BYTES
            if head_frames <= excess:
                self._blocks.popleft()
                cut = head_frames
            else:  # keep the newest part of the oldest block
                self._blocks[0] = head[excess * FRAME_BYTES :]
                cut = excess
            self._frames -= cut
            dropped += cut
        return dropped

    def pop(self) -> bytes | None:
        """The oldest block, or None when empty."""
        if not self._blocks:
            return None
        block = self._blocks.popleft()
        self._frames -= len(block) // FRAME_BYTES
        return block

    def clear(self) -> None:
        self._blocks.clear()
        self._frames = 0


class MicrophoneSource:
    """16 kHz mono S16_LE frames from a PortAudio input device."""

    def __init__(self, device: str | int | None = None, *, queue_frames: int = 200) -> None:
        if queue_frames < 1:
            raise ValueError("queue_frames must be >= 1")
        self.device = device
        self.overruns = 0
        self.dropped = 0
        self.last_frame_time: float | None = None
        self._buffer = FrameBuffer(queue_frames)  # loop side only
        self._readable = asyncio.Event()
        self.block_frames = IDLE_BLOCK_FRAMES
        self._pending: list[bytes] = []  # PortAudio thread only: buffers not yet handed to the loop
        self._pending_bytes = 0
        self._pending_status = 0
        self._pa: Any = None
        self._stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rate = SAMPLE_RATE
        self._channels = 1
        self._tail = b""
        self._resampler: StreamResampler | None = None
        self._last_log = 0.0
        self._closed = False

    async def start(self) -> None:
        """Open the device (done by ``frames()`` if not called first)."""
        if self._stream is not None:
            return
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        pyaudio = _pyaudio()
        pa = pyaudio.PyAudio()
        try:
            devices = _devices(pa)
            chosen = resolve_device(devices, self.device)
            index = chosen.index if chosen else None
            attempts = [(SAMPLE_RATE, 1)]
            if chosen is not None:  # hw devices often lack 16 kHz mono; convert in software then
                native = (int(chosen.default_sample_rate), min(chosen.max_input_channels, 2))
                attempts.append(native)
            error: Exception | None = None
            for rate, channels in attempts:
                try:
                    self._stream = pa.open(
                        format=pyaudio.paInt16,
                        channels=channels,
                        rate=rate,
                        input=True,
                        input_device_index=index,
                        frames_per_buffer=FRAME_SAMPLES * rate // SAMPLE_RATE,
                        stream_callback=self._callback,
                    )
                except (OSError, ValueError) as exc:
                    error = exc
                    continue
                self._rate, self._channels = rate, channels
                break
            if self._stream is None:
                name = chosen.name if chosen else "default"
                raise AudioDeviceError(
                    f"cannot open input device {name!r}: {error}; {_describe_inputs(devices)}"
                ) from error
        except BaseException:
            pa.terminate()
            raise
        self._pa = pa
        _LOGGER.info(
            "microphone open: %s at %d Hz x%d",
            chosen.name if chosen else "default",
            self._rate,
            self._channels,
        )

    def _callback(
        self, in_data: bytes | None, frame_count: int, time_info: Any, status: int
    ) -> tuple[None, int]:
        # PortAudio thread: no blocking, no shared-state mutation except through the loop.
        loop = self._loop
        if loop is None or in_data is None or self._closed:
            return None, 0
        # PortAudio delivers 10 ms buffers; hand them to the loop a block at a time (one wake-up per block).
        self._pending.append(in_data)
        self._pending_bytes += len(in_data)
        self._pending_status |= status
        block_bytes = self.block_frames * FRAME_BYTES * self._rate // SAMPLE_RATE * self._channels
        if self._pending_bytes < block_bytes:
            return None, 0  # paContinue
        data, status = b"".join(self._pending), self._pending_status
        self._pending, self._pending_bytes, self._pending_status = [], 0, 0
        try:
            loop.call_soon_threadsafe(self._enqueue, data, status)
        except RuntimeError:  # loop closed: stop the stream (paComplete = 1)
            return None, 1
        return None, 0  # paContinue

    def _enqueue(self, data: bytes, status: int) -> None:
        if status & 0x2:  # paInputOverflow
            self.overruns += 1
        if self._rate != SAMPLE_RATE or self._channels != 1:
            # A device that cannot record 16 kHz mono: mix down, then resample with state kept across buffers.
            if self._resampler is None:
                self._resampler = StreamResampler(self._rate)
            data = to_s16(self._resampler.process(to_mono(data, self._channels)))
        data = self._tail + data if self._tail else data
        usable = len(data) - len(data) % FRAME_BYTES
        self._tail = data[usable:]
        if usable:
            # One item per PortAudio block of whole frames: one loop wake-up per block.
            self.dropped += self._buffer.push(data[:usable])
            self._readable.set()
        self.last_frame_time = time.monotonic()
        if (self.overruns or self.dropped) and self.last_frame_time - self._last_log >= _LOG_INTERVAL_S:
            self._last_log = self.last_frame_time
            _LOGGER.warning("microphone: %d overruns, %d frames dropped so far", self.overruns, self.dropped)

    async def frames(self) -> AsyncIterator[bytes]:
        await self.start()
        while True:
            block = self._buffer.pop()
            if block is not None:
                yield block
                continue
            if self._closed:
                return
            self._readable.clear()
            await self._readable.wait()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        stream, pa = self._stream, self._pa
        self._stream = self._pa = None
        if stream is not None:
            await asyncio.to_thread(_close_stream, stream, pa)
        self._readable.set()  # wakes a reader blocked in frames(); it ends after the frames still held


def _close_stream(stream: Any, pa: Any) -> None:
    with contextlib.suppress(OSError):
        stream.stop_stream()
    stream.close()
    if pa is not None:
        pa.terminate()
