"""The audio-source seam: anything yielding 320-byte frames (10 ms, 16 kHz mono S16_LE); its settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


class AudioSource(Protocol):
    block_frames: int
    """How many 10 ms frames to hand over at once; the dialog changes it (see avsd.audio.frames)."""

    def frames(self) -> AsyncIterator[bytes]:
        """Yield blocks of ``block_frames`` whole 320-byte frames until closed or the input ends."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AudioSettings:
    """Microphone selection and capture buffering."""

    device: str = field(
        default="",
        metadata={
            "help": "Input device: index or part of its name (`avsd devices` lists them); empty = default"
        },
    )
    queue_frames: int = field(
        default=200,
        metadata={
            "help": "Captured 10 ms frames buffered before the oldest are dropped",
            "min": 10,
            "max": 6000,
        },
    )
    stall_timeout_s: float = field(
        default=5.0,
        metadata={
            "help": "No microphone frame for this long means the capture path is hung (the systemd watchdog stops)",
            "min": 0.5,
            "max": 60.0,
        },
    )

    def device_spec(self) -> str | int | None:
        """``device`` for MicrophoneSource: None = default, int = index, else a name substring."""
        text = self.device.strip()
        if not text:
            return None
        return int(text) if text.isdigit() else text
