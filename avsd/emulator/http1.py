"""One server-side HTTP/1.1 connection (sans-IO ``h11`` over the asyncio TLS stream), for the plain routes.

Amazon's LWA endpoint and media CDNs speak HTTP/1.1, and most OAuth clients (curl, requests, alexa_client) use
it; AVS itself is HTTP/2 only. So a client whose ALPN did not pick ``h2`` lands here: LWA and media are answered,
AVS routes get 505 with a System.Exception body saying HTTP/2 is required.

Requests are handled one at a time (keep-alive, no pipelining beyond what h11 buffers); a connection that sends
nothing for ``idle_timeout_s`` (between requests or within one: a slow-loris) is closed. A request body over
``max_body`` is answered 413 and the connection closed. h11 errors (malformed requests) are logged and answered
400 where h11 still allows it; the connection then closes and nothing else is affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import h11

from avsd.emulator.replies import PlainRequest, PlainResponse, plain_text

_log = logging.getLogger(__name__)

_READ_SIZE = 65536
_CLOSE_TIMEOUT_S = 1.0
IDLE_TIMEOUT_S = 60.0  # a connection that sends nothing (or a request too slowly) for this long is closed
_ids = itertools.count(1)


PlainHandler = Callable[[PlainRequest], Awaitable[PlainResponse]]


class Http1Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: PlainHandler,
        *,
        max_body: int,
        connection_id: int | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.id = connection_id if connection_id is not None else next(_ids)
        self._reader, self._writer = reader, writer
        self._handler = handler
        self._max_body = max_body
        self._idle_timeout_s = idle_timeout_s
        self._h11 = h11.Connection(h11.SERVER)
        self.requests = 0

    async def run(self) -> None:
        try:
            while await self._one_request():
                self._h11.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            _log.info("connection %d: malformed HTTP/1.1 request: %s", self.id, exc)
            if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(h11.LocalProtocolError, ConnectionError, ssl.SSLError, OSError):
                    await self._send(plain_text(400, "malformed HTTP/1.1 request"), head=False)
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            _log.debug("connection %d: transport error %r", self.id, exc)
        finally:
            await self.close()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await self._writer.wait_closed()

    async def _next_event(self) -> h11.Event | None:
        """The next event; None at EOF (or PAUSED: a pipelined request waits for the next cycle)."""
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                try:
                    async with asyncio.timeout(self._idle_timeout_s):
                        data = await self._reader.read(_READ_SIZE)
                except TimeoutError:
                    _log.info("connection %d: idle for %.0f s, closed", self.id, self._idle_timeout_s)
                    return None
                self._h11.receive_data(data)  # b"" means EOF; h11 then answers ConnectionClosed
                continue
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                return None
            assert isinstance(event, h11.Event)
            return event

    async def _one_request(self) -> bool:
        """Read one request, answer it; False when the connection should close."""
        event = await self._next_event()
        if not isinstance(event, h11.Request):
            return False
        self.requests += 1
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
        method, target = event.method.decode("ascii"), event.target.decode("latin-1")
        body: bytearray | None = bytearray()
        while True:
            part = await self._next_event()
            if part is None:
                return False
            if isinstance(part, h11.Data) and body is not None:
                body += part.data
                if len(body) > self._max_body:
                    body = None  # keep reading to the end of the message, then answer 413
            elif isinstance(part, h11.EndOfMessage):
                break
        request = PlainRequest(
            method, target, headers, bytes(body) if body is not None else None, "1.1", self.id, self.requests
        )
        response = await self._handler(request)
        await self._send(response, head=method == "HEAD")
        if response.stall:
            # A stream that hangs: nothing more until the client gives up and closes.
            while await self._reader.read(_READ_SIZE):
                pass
            return False
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    async def _send(self, response: PlainResponse, *, head: bool) -> None:
        headers = [(k, v) for k, v in response.headers]
        if not any(k == "content-length" for k, _ in headers) and not head:
            headers.append(("content-length", str(len(response.body))))
        try:
            reason = HTTPStatus(response.status).phrase.encode()
        except ValueError:
            reason = b""
        self._writer.write(self._h11.send(h11.Response(status_code=response.status, headers=headers, reason=reason)))
        if response.body and not head:
            self._writer.write(self._h11.send(h11.Data(data=response.body)))
        if not response.stall:
            self._writer.write(self._h11.send(h11.EndOfMessage()))
        await self._writer.drain()
