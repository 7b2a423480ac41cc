"""The one HTTP boundary: every call into httpx / httpcore / h2 made by avsd goes through this module.

Callers (the AVS client, LWA token refresh, login, doctor, capabilities publishing, AudioPlayer URL fetches) see
plain data (:class:`HttpReply`, :class:`HttpStream`) and avsd errors, never an httpx type. Every third-party
exception is translated in :func:`http_errors` and re-raised ``from exc``::

    httpx.TimeoutException (connect/read/write/pool)      -> AvsConnectionError("... timed out")
    httpx.RemoteProtocolError(ConnectionTerminated)       -> ConnectionClosedError (GOAWAY before the answer)
    transport.StreamRefused (GOAWAY refused the stream)   -> StreamRefusedError   (not processed: safe to resend)
    httpx.StreamConsumed (a body iterated twice)          -> StreamRefusedError   (backstop; should not happen)
    RuntimeError "client has been closed"                 -> StreamRefusedError   (never sent)
    httpx.HTTPError (ConnectError, ReadError, WriteError,
      RemoteProtocolError, LocalProtocolError, PoolTimeout,
      UnsupportedProtocol, ...), httpcore.* that escaped
      httpx, h2.exceptions.H2Error, ssl.SSLError, OSError  -> AvsConnectionError
    httpx.InvalidURL, httpx.StreamError (other)            -> AvsConnectionError

``transport.py`` (the network backend and the flow-control fix) is the only other module that imports httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import h2.events
import h2.exceptions
import httpcore
import httpx

from avsd.avs.transport import Http2Transport, StreamRefused
from avsd.errors import AvsConnectionError, ConnectionClosedError, StreamRefusedError
from avsd.logredact import quiet_protocol_loggers

Body = bytes | AsyncIterable[bytes] | None


@contextlib.contextmanager
def http_errors(what: str) -> Iterator[None]:
    """Translate whatever httpx, httpcore, h2, ssl or the socket raised into the avsd error tree."""
    try:
        yield
    except StreamRefused as exc:
        raise StreamRefusedError(f"{what}: refused by the server before processing ({exc})") from exc
    except httpx.StreamConsumed as exc:
        # httpcore re-sent a request whose streamed body was already used (it retries after GOAWAY).
        raise StreamRefusedError(f"{what}: request body already consumed by a refused attempt") from exc
    except httpx.RemoteProtocolError as exc:
        cause = exc.__cause__  # httpx keeps httpcore's exception, which carries the h2 event
        if cause is not None and cause.args and isinstance(cause.args[0], h2.events.ConnectionTerminated):
            # httpcore abandons every open stream on GOAWAY, even those the server still answers.
            raise ConnectionClosedError(f"{what}: connection closed (GOAWAY) before the answer") from exc
        raise AvsConnectionError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except (httpx.TimeoutException, httpcore.TimeoutException) as exc:
        raise AvsConnectionError(f"{what}: timed out ({type(exc).__name__})") from exc
    except (
        httpx.HTTPError,
        httpx.InvalidURL,
        httpx.StreamError,
        httpcore.ConnectionNotAvailable,
        httpcore.NetworkError,
        httpcore.ProtocolError,
        httpcore.UnsupportedProtocol,
        h2.exceptions.H2Error,
        ssl.SSLError,
        OSError,
    ) as exc:
        raise AvsConnectionError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except RuntimeError as exc:
        # httpx raises a bare RuntimeError for a request on a closed client: the request was never sent.
        if "client has been closed" in str(exc):
            raise StreamRefusedError(f"{what}: connection closed before the request was sent") from exc
        raise


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A whole (bounded) HTTP answer."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    http_version: str = ""

    def json(self) -> Any:
        """The body as JSON; ValueError if it is not."""
        return json.loads(self.body)


class HttpStream:
    """A response whose body is read as it arrives. Errors while reading are avsd errors too."""

    def __init__(self, response: httpx.Response, what: str) -> None:
        self._response = response
        self._what = what
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self.http_version = str(response.http_version)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The raw body (no content decoding) chunk by chunk."""
        with http_errors(self._what):
            async for chunk in self._response.aiter_raw():
                yield chunk

    async def decoded(self) -> AsyncIterator[bytes]:
        """The body with any content-encoding undone."""
        with http_errors(self._what):
            async for chunk in self._response.aiter_bytes():
                yield chunk

    async def read(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body, content-encoding undone (an error body may be endless)."""
        body = bytearray()
        async for chunk in self.decoded():
            body += chunk
            if len(body) >= limit:
                break
        return bytes(body[:limit])


def _build_timeout(timeout: float | None, connect: float | None = None) -> httpx.Timeout:
    return httpx.Timeout(timeout, connect=connect if connect is not None else timeout)


class HttpClient:
    """A general HTTPS client (LWA, capabilities API, media URLs, doctor). ``transport`` is for tests only."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 60.0,
        http2: bool = True,
        follow_redirects: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        quiet_protocol_loggers()  # hpack logs decoded authorization headers at DEBUG
        self._client = httpx.AsyncClient(
            http2=http2,
            verify=ssl_context if ssl_context is not None else True,
            timeout=timeout,
            follow_redirects=follow_redirects,
            transport=transport,
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeout: float | None = None,
        limit: int = 1 << 20,
    ) -> HttpReply:
        """Send and read at most ``limit`` bytes of the answer."""
        async with self.stream(method, url, headers=headers, form=form, content=content, timeout=timeout) as reply:
            body = await reply.read(limit)
            return HttpReply(reply.status, dict(reply.headers), body, reply.http_version)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[HttpStream]:
        what = f"{method} {_short(url)}"
        with http_errors(what):
            request = self._client.build_request(
                method,
                url,
                headers=dict(headers or {}),
                data=dict(form) if form is not None else None,
                content=content,
                timeout=_build_timeout(timeout) if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            response = await self._client.send(request, stream=True)
        try:
            yield HttpStream(response, what)
        finally:
            with http_errors(what):
                await response.aclose()

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.aclose()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Http2Connection:
    """The AVS connection: one HTTP/2 connection, no silent reconnects (see transport.py), streamed bodies."""

    def __init__(self, ssl_context: ssl.SSLContext, *, timeout_s: float, connect_timeout_s: float) -> None:
        quiet_protocol_loggers()
        self._client = httpx.AsyncClient(
            transport=Http2Transport(ssl_context),
            timeout=_build_timeout(timeout_s, connect_timeout_s),
        )
        self._connect_timeout_s = connect_timeout_s
        self._closing = asyncio.Event()

    @contextlib.asynccontextmanager
    async def open(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Body = None,
        no_read_timeout: bool = False,
    ) -> AsyncIterator[HttpStream]:
        """Send a request (a ``bytes`` body can be resent; an iterator is consumed once) -> its answer, open.

        ``no_read_timeout``: long gaps between data are normal (the downchannel)."""
        what = f"{method} {_short(url)}"
        timeout: httpx.Timeout | Any = httpx.USE_CLIENT_DEFAULT
        if no_read_timeout:
            timeout = httpx.Timeout(self._connect_timeout_s, read=None)
        with http_errors(what):
            request = self._client.build_request(method, url, headers=dict(headers), content=body, timeout=timeout)
            response = await self._send_unless_closed(request, what)
        try:
            yield HttpStream(response, what)
        finally:
            with http_errors(what):
                await response.aclose()

    async def _send_unless_closed(self, request: httpx.Request, what: str) -> httpx.Response:
        # httpcore's pool does not wake requests queued for a connection when it is closed: they would wait for
        # the pool timeout (30 s). Closing this connection ends them at once.
        if self._closing.is_set():
            raise StreamRefusedError(f"{what}: connection closed before the request was sent")
        send = asyncio.ensure_future(self._client.send(request, stream=True))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({send, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not send.done():
                send.cancel()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await send
        if send.cancelled():
            raise ConnectionClosedError(f"{what}: connection closed while the request was waiting or sending")
        return send.result()

    async def aclose(self) -> None:
        self._closing.set()
        with contextlib.suppress(Exception):
            await self._client.aclose()


def _short(url: str) -> str:
    """The URL without its query (which may carry codes) for messages."""
    return url.split("?", 1)[0][:120]


__all__ = ["Body", "Http2Connection", "HttpClient", "HttpReply", "HttpStream", "http_errors"]
