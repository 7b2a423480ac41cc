"""The device's dialog state machine: states, triggers and one transition table. Pure, no I/O, no clock."""

from __future__ import annotations

from enum import StrEnum


class DialogState(StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    EXPECTING = "expecting"
    MUTED = "muted"
    OFFLINE = "offline"
