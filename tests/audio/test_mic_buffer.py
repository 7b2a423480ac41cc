"""The microphone buffer is bounded in frames, not in blocks (issue 8).

Reproducer: the queue held 20 *blocks*; blocks are 10 frames while idle and 1 frame while listening, so it held
2 s of audio while idle but only 200 ms while the user spoke. Now ``audio.queue_frames`` frames whatever the
block size. The PortAudio side is not needed: ``_enqueue`` is what the loop runs for each block.
"""

from __future__ import annotations

import asyncio

import pytest

from avsd.audio.frames import ACTIVE_BLOCK_FRAMES, FRAME_BYTES, IDLE_BLOCK_FRAMES
from avsd.audio.mic import FrameBuffer, MicrophoneSource


def frames(n: int, start: int = 0) -> bytes:
    """``n`` frames, each filled with its own number (mod 256), so order and drops are visible."""
    return b"".join(bytes([(start + i) % 256]) * FRAME_BYTES for i in range(n))


@pytest.mark.parametrize("block", [ACTIVE_BLOCK_FRAMES, IDLE_BLOCK_FRAMES, 1, 7])
async def test_the_microphone_holds_queue_frames_whatever_the_block_size(block: int) -> None:
    mic = MicrophoneSource(None, queue_frames=200)
    sent = 0
    while sent < 600:  # 6 s of audio nobody reads
        mic._enqueue(frames(block, sent), 0)
        sent += block
    mic._stream = object()  # "open": frames() does not try PortAudio
    mic._closed = True  # as close() leaves it: frames() ends after what is held
    got = b""
    async with asyncio.timeout(2):
        async for chunk in mic.frames():
            got += chunk
    assert len(got) // FRAME_BYTES == 200, "not 2 s of audio"
    assert mic.dropped == sent - 200
    # The newest frames survived, in order.
    assert got == frames(200, sent - 200)


def test_frame_buffer_drops_the_oldest_frames_and_cuts_a_block() -> None:
    buffer = FrameBuffer(5)
    assert buffer.push(frames(3, 0)) == 0
    assert buffer.push(frames(4, 3)) == 2  # 7 > 5: frames 0 and 1 go, the first block is cut
    assert len(buffer) == 5
    assert buffer.pop() == frames(1, 2)
    assert buffer.pop() == frames(4, 3)
    assert buffer.pop() is None and len(buffer) == 0


def test_frame_buffer_refuses_a_zero_bound() -> None:
    with pytest.raises(ValueError):
        FrameBuffer(0)
