"""Where decoded PCM goes: a PortAudio device (blocking writes) or a WAV file. Called from worker threads only.

An output keeps one format for its whole life (decoders convert to it), is opened lazily on first use, and frames
each item with :meth:`PcmOutput.begin` / :meth:`PcmOutput.end`.
"""

from __future__ import annotations

import logging
import threading
import time
import wave
from pathlib import Path
from typing import Any, Protocol

from avsd.errors import PlaybackError
from avsd.playback.decode import PcmFormat

log = logging.getLogger(__name__)


class PcmOutput(Protocol):
    fmt: PcmFormat

    def begin(self, item_name: str) -> str | None:
        """Start an item; returns the file written, if any."""

    def write(self, pcm: bytes) -> None:
        """Blocking: returns when the device (or file) has taken the samples."""

    def end(self, *, drain: bool) -> None:
        """End the item; ``drain``: let queued samples play out (natural end) rather than dropping them."""

    def close(self) -> None: ...


class WavFileOutput:
    """One WAV file per item in ``directory``, written as fast as the decoder goes."""

    def __init__(self, directory: Path, fmt: PcmFormat | None = None, *, realtime: bool = False) -> None:
        self.fmt = fmt or PcmFormat()
        self._directory = directory
        self._wav: wave.Wave_write | None = None
        self._realtime = realtime
        self._started = 0.0
        self._written_s = 0.0

    def begin(self, item_name: str) -> str | None:
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            path = self._directory / f"{item_name}.wav"
            wav = wave.open(str(path), "wb")  # noqa: SIM115 - closed in end()
        except OSError as exc:
            raise PlaybackError(f"cannot write WAV into {self._directory}: {exc}") from exc
        wav.setnchannels(self.fmt.channels)
        wav.setsampwidth(2)
        wav.setframerate(self.fmt.rate)
        self._wav = wav
        self._started, self._written_s = time.monotonic(), 0.0
        return str(path)

    def write(self, pcm: bytes) -> None:
        if self._wav is not None:
            # writeframes patches the header each time, so the file is a valid WAV at every moment.
            self._wav.writeframes(pcm)
            if self._realtime:  # on the decoder's worker thread: blocking is what a sound card would do
                self._written_s += len(pcm) / (2 * self.fmt.channels * self.fmt.rate)
                delay = self._started + self._written_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def end(self, *, drain: bool) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None

    def close(self) -> None:
        self.end(drain=False)


class PyAudioOutput:
    """A PortAudio output stream, opened on first use and started/stopped per item.

    ``device`` is a PortAudio device index or a (sub)string of its name; empty means the default output (for ALSA
    that is ``pcm.!default`` from ``~/.asoundrc`` / ``/etc/asound.conf``).
    """

    def __init__(
        self, device: str = "", fmt: PcmFormat | None = None, *, frames_per_buffer: int = 1024
    ) -> None:
        self.fmt = fmt or PcmFormat(rate=48000, channels=2)
        self._device = device
        self._frames_per_buffer = frames_per_buffer
        self._lock = threading.Lock()
        self._pa: Any = None
        self._stream: Any = None

    def _open(self) -> None:
        try:
            import pyaudio
        except ImportError as exc:
            raise PlaybackError(
                "PyAudio is not installed: sudo apt install portaudio19-dev; pip install pyaudio"
            ) from exc
        pa = pyaudio.PyAudio()
        try:
            index = self._find_device(pa)
            self._stream = pa.open(
                format=pyaudio.paInt16,
                channels=self.fmt.channels,
                rate=self.fmt.rate,
                output=True,
                output_device_index=index,
                frames_per_buffer=self._frames_per_buffer,
                start=False,
            )
        except (OSError, ValueError) as exc:
            pa.terminate()
            where = f"device {self._device!r}" if self._device else "the default output device"
            raise PlaybackError(
                f"cannot open {where} for playback ({exc}); check `aplay -L` and playback.output_device"
            ) from exc
        self._pa = pa

    def _find_device(self, pa: Any) -> int | None:
        if not self._device:
            if pa.get_device_count() == 0:
                raise OSError("PortAudio found no audio devices")
            return None
        if self._device.isdigit():
            return int(self._device)
        for index in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(index)
            if self._device in str(info.get("name", "")) and int(info.get("maxOutputChannels", 0)) > 0:
                return index
        raise OSError(f"no output device named like {self._device!r}")

    def begin(self, item_name: str) -> str | None:
        with self._lock:
            if self._stream is None:
                self._open()
            if self._stream.is_stopped():
                self._stream.start_stream()
        return None

    def write(self, pcm: bytes) -> None:
        try:
            self._stream.write(pcm, exception_on_underflow=False)
        except OSError as exc:
            raise PlaybackError(f"audio output failed: {exc}") from exc

    def end(self, *, drain: bool) -> None:
        # Pa_StopStream plays out what is queued; a stopped item has at most one buffer (~20 ms) left, so both
        # paths use it (PyAudio does not expose Pa_AbortStream).
        with self._lock:
            if self._stream is not None and not self._stream.is_stopped():
                self._stream.stop_stream()

    def close(self) -> None:
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
            if self._pa is not None:
                self._pa.terminate()
                self._pa = None


class MemoryOutput:
    """Keeps each item's PCM in memory instead of playing it (headless sessions: the reply is the product).

    Called from the decoder's worker thread; :attr:`items` is read on the loop, hence the lock."""

    def __init__(self, fmt: PcmFormat | None = None) -> None:
        self.fmt = fmt or PcmFormat()
        self._lock = threading.Lock()
        self._current: bytearray | None = None
        self._items: list[tuple[str, bytes]] = []

    @property
    def items(self) -> list[tuple[str, bytes]]:
        """(item name, PCM) of every item that has ended, oldest first."""
        with self._lock:
            return list(self._items)

    def begin(self, item_name: str) -> str | None:
        with self._lock:
            self._current = bytearray()
            self._name = item_name
        return None

    def write(self, pcm: bytes) -> None:
        with self._lock:
            if self._current is not None:
                self._current += pcm

    def end(self, *, drain: bool) -> None:
        with self._lock:
            if self._current is not None:
                self._items.append((self._name, bytes(self._current)))
                self._current = None

    def close(self) -> None:
        self.end(drain=False)
