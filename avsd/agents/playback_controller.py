"""PlaybackController 1.0 (protocol reference §6.4): the user's transport buttons (GPIO, CLI), not voice.

``play()``, ``pause()``, ``next()``, ``previous()`` send ``PlayCommandIssued`` / ``PauseCommandIssued`` /
``NextCommandIssued`` / ``PreviousCommandIssued``: payload ``{}``, no dialogRequestId, and the **full context**
(each requires it), so the cloud knows what is playing. The cloud answers with AudioPlayer directives (Play, Stop),
in the event response or on the downchannel; they reach the AudioPlayer through the sequencer like any other.
There are no directives and no context of its own. (The Capabilities list names PlaybackController together
with AudioPlayer.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from avsd.agents.events import EventSender
from avsd.avs.messages import Event

_LOGGER = logging.getLogger(__name__)
NAMESPACE = "PlaybackController"


class Command(StrEnum):
    PLAY = "Play"
    PAUSE = "Pause"
    NEXT = "Next"
    PREVIOUS = "Previous"


def command_event(command: Command, context: Sequence[Mapping[str, Any]]) -> Event:
    """``PlaybackController.<Command>CommandIssued`` with ``context``. Pure."""
    return Event.new(NAMESPACE, f"{command.value}CommandIssued", {}, context=list(context))


class PlaybackControllerAgent:
    def __init__(self, *, events: EventSender, context: Callable[[], Sequence[Mapping[str, Any]]]) -> None:
        self._events = events
        self._context = context

    def issue(self, command: Command) -> None:
        _LOGGER.info("button: %s", command.value)
        self._events.send(command_event(command, self._context()))

    def play(self) -> None:
        self.issue(Command.PLAY)

    def pause(self) -> None:
        self.issue(Command.PAUSE)

    def next(self) -> None:
        self.issue(Command.NEXT)

    def previous(self) -> None:
        self.issue(Command.PREVIOUS)


__all__ = ["Command", "PlaybackControllerAgent", "command_event"]
