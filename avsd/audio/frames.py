"""The one audio format avsd uses internally: 16 kHz mono signed 16-bit little-endian, 10 ms frames.

Every source converts to this format, every engine (wake word, VAD, the Recognize upload) consumes it, so no
component ever resamples twice. AVS wants exactly this for ``AUDIO_L16_RATE_16000_CHANNELS_1``.
"""

from __future__ import annotations

SAMPLE_RATE = 16000
SAMPLE_WIDTH = 2
CHANNELS = 1
FRAME_MS = 10
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 160
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH  # 320
FRAME_SECONDS = FRAME_MS / 1000

SILENCE_FRAME = bytes(FRAME_BYTES)

# Sources hand audio over in blocks of whole frames, not frame by frame: every hand-over wakes the event loop, and
# 100 wake-ups a second cost more CPU than the wake-word model (bench/bench_pipeline.py, idle daemon with the same
# wake-word code: 1.25-1.5 % of a core with 60 ms blocks, 0.75-0.9 % with 100 ms). While the device only waits
# for its wake word, blocks are
# IDLE_BLOCK_FRAMES long: the wake word is acted on at most 100 ms after it ends (what is uploaded does not change:
# the ring buffer holds it). While it listens, blocks are ACTIVE_BLOCK_FRAMES long, so end of speech is acted on
# at once. Everything downstream takes any number of whole frames; the upload still goes out frame by frame.
IDLE_BLOCK_FRAMES = 10
ACTIVE_BLOCK_FRAMES = 1


def samples_to_seconds(samples: int) -> float:
    """Convert a sample count (or an absolute sample index) to seconds of stream time."""
    return samples / SAMPLE_RATE


def seconds_to_samples(seconds: float) -> int:
    """Convert seconds to the nearest whole sample count."""
    return round(seconds * SAMPLE_RATE)


def split_frames(data: bytes) -> tuple[list[bytes], bytes]:
    """Split ``data`` into whole 320-byte frames; return them and the leftover tail (< 320 bytes)."""
    whole = len(data) - len(data) % FRAME_BYTES
    frames = [data[i : i + FRAME_BYTES] for i in range(0, whole, FRAME_BYTES)]
    return frames, data[whole:]
