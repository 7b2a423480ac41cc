"""What the Twilio and Vonage websocket handlers share: close codes, the protocol error, and how a call's socket
ends (:class:`CallSocket`)."""

from __future__ import annotations

import logging
from types import TracebackType

from aiohttp import web

from avsd.errors import AvsdError
from avsd.phone.bridge import PhoneBridge
from avsd.phone.call import Call

_LOGGER = logging.getLogger(__name__)

WS_MAX_MESSAGE = 256 * 1024
CLOSE_POLICY = 1008  # RFC 6455 "policy violation": bad or missing token
CLOSE_PROTOCOL = 1002
CLOSE_UNAVAILABLE = 1011  # "internal error": the back-end could not take the call


class StreamError(Exception):
    """A message that breaks the provider's protocol; the call is closed."""


class CallSocket:
    """``async with CallSocket(bridge, ws, "Twilio stream") as sock: ... sock.call = await bridge.open_call(...)``.

    On the way out, whatever happened: a StreamError closes the socket with 1002 and its reason, an AvsdError (the
    back-end could not take the call) with 1011; the call (if it started) ends; the socket is closed. Only this
    call: both errors are handled here, and nothing else is shared with the other calls.
    """

    def __init__(self, bridge: PhoneBridge, ws: web.WebSocketResponse, what: str) -> None:
        self.bridge, self.ws, self.what = bridge, ws, what
        self.call: Call | None = None

    async def __aenter__(self) -> CallSocket:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        name = self.call.call_id if self.call is not None else "(not started)"
        try:
            if isinstance(exc, StreamError):
                _LOGGER.warning("%s %s closed: %s", self.what, name, exc)
                await self.ws.close(code=CLOSE_PROTOCOL, message=str(exc).encode()[:120])
            elif isinstance(exc, AvsdError):  # this caller hears the line close
                _LOGGER.warning("call %s: cannot be answered: %s", name, exc)
                await self.ws.close(code=CLOSE_UNAVAILABLE, message=b"back-end unavailable")
        finally:
            if self.call is not None:
                await self.bridge.end_call(self.call)
            if not self.ws.closed:
                await self.ws.close()
        return isinstance(exc, StreamError | AvsdError)
