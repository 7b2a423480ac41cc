"""System 1.0 (protocol reference §6.8): SetEndpoint, ResetUserInactivity, the Exception directive, and the
hourly UserInactivityReport. SynchronizeState and ExceptionEncountered are sent by the client and sequencer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import Protocol

from avsd.agents.events import EventSender
from avsd.avs.messages import Directive, Event
from avsd.errors import DirectiveParseError
from avsd.state import DialogState, Transition

_LOGGER = logging.getLogger(__name__)
NAMESPACE = "System"


class EndpointSwitch(Protocol):
    def set_endpoint(self, endpoint: str) -> None: ...


class SystemAgent:
    def __init__(
        self,
        *,
        client: EndpointSwitch,
        events: EventSender,
        report_interval_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._events = events
        self._report_interval_s = report_interval_s
        self._clock = clock
        self._last_activity = clock()

    def handles(self) -> Collection[tuple[str, str]]:
        return {(NAMESPACE, "SetEndpoint"), (NAMESPACE, "ResetUserInactivity"), (NAMESPACE, "Exception")}

    def blocking(self, directive: Directive) -> bool:
        return False

    async def handle(self, directive: Directive) -> None:
        if directive.name == "SetEndpoint":
            endpoint = directive.payload.get("endpoint")
            if not isinstance(endpoint, str) or not endpoint.startswith("https://"):
                raise DirectiveParseError("SetEndpoint needs an https endpoint", directive.raw)
            self._client.set_endpoint(endpoint)
        elif directive.name == "ResetUserInactivity":
            self._last_activity = self._clock()
        else:  # an Exception message pushed as a directive: nothing to do but say so
            _LOGGER.warning(
                "AVS reported an exception: %s %s",
                directive.payload.get("code"),
                directive.payload.get("description") or "",
            )

    async def cancel(self, directive: Directive) -> None:
        return None

    def user_activity(self, transition: Transition) -> None:
        """The SDK resets the inactivity clock when entering or leaving RECOGNIZING."""
        if DialogState.LISTENING in (transition.previous, transition.state):
            self._last_activity = self._clock()

    @property
    def inactive_s(self) -> int:
        return int(self._clock() - self._last_activity)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._report_interval_s)
            self._events.send(Event.new(NAMESPACE, "UserInactivityReport", {"inactiveTimeInSeconds": self.inactive_s}))
