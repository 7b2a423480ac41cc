"""Audio history addressed by absolute sample index, for the Recognize pre-roll.

When the wake word fires, the upload has to start 500 ms *before* the word began, i.e. about 1.3 s before the
detection; the ring keeps that history. Indices are absolute (samples since the source started), so a
:class:`~avsd.wake.base.Detection`'s ``start_index`` can be turned into a read position without any
bookkeeping by the caller. The buffer is a preallocated ``bytearray`` written circularly (no allocation
per frame).
"""

from __future__ import annotations

from avsd.audio.frames import SAMPLE_RATE, SAMPLE_WIDTH


class RingBuffer:
    """Keeps the newest ``capacity_s`` seconds of 16 kHz S16_LE mono audio."""

    def __init__(self, capacity_s: float = 2.5) -> None:
        if capacity_s <= 0:
            raise ValueError("capacity_s must be positive")
        self._capacity = round(capacity_s * SAMPLE_RATE) * SAMPLE_WIDTH  # bytes
        self._buf = bytearray(self._capacity)
        self._written = 0  # total bytes ever appended

    @property
    def capacity_samples(self) -> int:
        return self._capacity // SAMPLE_WIDTH

    @property
    def end_index(self) -> int:
        """Sample index just past the newest sample."""
        return self._written // SAMPLE_WIDTH

    @property
    def start_index(self) -> int:
        """Oldest sample index still held."""
        return max(0, self._written - self._capacity) // SAMPLE_WIDTH

    def append(self, frame: bytes) -> int:
        """Store ``frame`` (whole samples); return the absolute sample index of its first sample."""
        if len(frame) % SAMPLE_WIDTH:
            raise ValueError("frame must hold whole 16-bit samples")
        first = self.end_index
        data = memoryview(frame)
        if len(data) > self._capacity:  # only the tail survives anyway
            skipped = len(data) - self._capacity
            self._written += skipped
            data = data[skipped:]
        pos = self._written % self._capacity
        head = min(len(data), self._capacity - pos)
        self._buf[pos : pos + head] = data[:head]
        if head < len(data):
            self._buf[: len(data) - head] = data[head:]
        self._written += len(data)
        return first

    def resized(self, capacity_s: float) -> RingBuffer:
        """A ring of ``capacity_s`` that continues this one: same absolute indices, the newest audio carried over
        (a reload that lengthens the pre-roll must not restart the sample count the wake-word indices use)."""
        ring = RingBuffer(capacity_s)
        keep = min(self._written, ring._capacity, self._capacity)
        ring._written = self._written - keep
        ring.append(self.read_from((self._written - keep) // SAMPLE_WIDTH))
        return ring

    def read_from(self, sample_index: int) -> bytes:
        """Bytes from ``sample_index`` (clamped to ``start_index``) to ``end_index``; b"" if in the future."""
        start = max(sample_index, self.start_index) * SAMPLE_WIDTH
        if start >= self._written:
            return b""
        pos = start % self._capacity
        length = self._written - start
        head = min(length, self._capacity - pos)
        if head == length:
            return bytes(self._buf[pos : pos + length])
        return bytes(self._buf[pos:]) + bytes(self._buf[: length - head])
