"""What avsd puts under httpx: a native-asyncio network stream, and a fix for an HTTP/2 flow-control stall.

1. httpcore reaches the network through anyio on asyncio, which adds cancel scopes and checkpoints to every read
   and write. AVS audio goes out as one 320-byte DATA frame every 10 ms, so that per-write overhead is most of
   the client's CPU while streaming (bench/bench_client.py measures it). :class:`AsyncioBackend` is a plain
   asyncio stream; everything above it (HTTP/2, pooling) is still httpx/httpcore.

2. httpcore 1.0's ``_wait_for_outgoing_flow`` waits for a WINDOW_UPDATE by taking the connection's read lock and
   reading the socket. When another stream's reader (our downchannel, which always reads) already consumed that
   WINDOW_UPDATE while the uploader waited for the lock, the uploader then blocks on a read that nothing will
   answer: a Recognize upload that outran the server's window stalls until some unrelated frame arrives.
   :class:`FlowSafeHTTP2Connection` re-checks the window under the read lock before reading. The same holds the
   other way round: a reader that gets the lock before the waiting uploader (another event stream waiting for
   its answer, e.g. during the server's think time) must not block on the socket while an uploader's window is
   open, or every concurrent upload stalls until that answer comes (measured: asks serialized one think time
   apart); so no reader blocks while any uploader waiting for flow could send.

3. When a GOAWAY names a last stream id below a request's stream, httpcore raises ``ConnectionNotAvailable`` and
   its pool silently re-sends the request on a NEW connection. For an event whose body was a stream that re-send
   raises ``httpx.StreamConsumed`` (a RuntimeError that escaped avsd's error handling and ended the daemon), and
   for any request it opens a second connection behind the AVS client's back (AVS allows one, with its
   downchannel). :class:`FlowSafeHTTP2Connection` raises :class:`StreamRefused` instead: the server did not
   process the stream, so the AVS client resends the event (fresh body) on the connection it opens next.

Written for httpcore 1.0.x / httpx 0.28 (pinned in setup.cfg); tests/avs/test_transport_fix.py fails if the
subclass is not the one httpcore builds.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket
import ssl
import typing
from collections.abc import Iterable

import httpcore
import httpx
from httpcore._async import http2 as _httpcore_http2

_LOGGER = logging.getLogger(__name__)


class StreamRefused(Exception):
    """The connection went away (GOAWAY) before the server processed this stream: resending it is safe.

    Deliberately not an httpcore exception, so that neither httpcore's pool (which would retry it) nor httpx's
    exception mapping touch it; avsd/avs/http.py maps it to StreamRefusedError."""


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("read timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ReadError(exc) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            # drain() returns at once unless the socket buffer is full (flow control of the transport).
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout("write timed out") from None
        except (OSError, ssl.SSLError, RuntimeError) as exc:
            raise httpcore.WriteError(exc) from exc

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            await self.aclose()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from None
        except (OSError, ssl.SSLError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(exc) from exc
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":  # httpcore asks this of idle HTTP/1.1 connections only
            return self._reader.at_eof()
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """``single_connection``: a second connect raises :class:`StreamRefused` (see the module docstring, 3.)."""

    def __init__(self, *, single_connection: bool = False) -> None:
        self._single_connection = single_connection
        self._connected = False

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._single_connection and self._connected:
            # httpcore's pool is reconnecting behind the AVS client's back: refuse, the client reconnects itself.
            raise StreamRefused("the connection is gone; not opening another one")
        self._connected = True
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(exc) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # as the SDK does (§1.3)
            for option in socket_options or ():
                sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used by avsd")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Http2Transport(httpx.AsyncHTTPTransport):
    """httpx's transport, HTTP/2 only, one connection, over :class:`AsyncioBackend`."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, http1=False, http2=True)
        # httpx builds its httpcore pool without a way to pass a network backend; replace it with one that has.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=1,
            max_keepalive_connections=1,
            keepalive_expiry=None,
            http1=False,
            http2=True,
            network_backend=AsyncioBackend(single_connection=True),
        )


# The stream whose send window the current task is waiting on (set only inside _wait_for_outgoing_flow).
_WAITING_FOR_FLOW: contextvars.ContextVar[int | None] = contextvars.ContextVar("avsd_waiting_for_flow", default=None)
_ORIGINAL_HTTP2 = _httpcore_http2.AsyncHTTP2Connection


class FlowSafeHTTP2Connection(_ORIGINAL_HTTP2):
    """httpcore's HTTP/2 connection, minus the flow-control stall described in the module docstring."""

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        try:
            return await super().handle_async_request(request)
        except httpcore.ConnectionNotAvailable:
            raise StreamRefused("connection closing (GOAWAY)") from None

    def __init__(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        super().__init__(*args, **kwargs)
        self._avsd_flow_waiters: set[int] = set()  # streams inside _wait_for_outgoing_flow

    def _an_uploader_can_send(self) -> bool:
        for stream_id in self._avsd_flow_waiters:
            with contextlib.suppress(Exception):  # a stream reset meanwhile: h2 raises for its window
                if self._send_window(stream_id) > 0:
                    return True
        return False

    def _send_window(self, stream_id: int) -> int:
        h2_state: typing.Any = self._h2_state
        return int(min(h2_state.local_flow_control_window(stream_id), h2_state.max_outbound_frame_size))

    async def _wait_for_outgoing_flow(self, request: httpcore.Request, stream_id: int) -> int:
        token = _WAITING_FOR_FLOW.set(stream_id)
        self._avsd_flow_waiters.add(stream_id)
        try:
            return int(await super()._wait_for_outgoing_flow(request, stream_id))
        finally:
            self._avsd_flow_waiters.discard(stream_id)
            _WAITING_FOR_FLOW.reset(token)

    async def _read_incoming_data(self, request: httpcore.Request) -> list[typing.Any]:
        # Called with the read lock held. If the window we wait for opened while we queued for the lock, read
        # nothing: the caller re-checks the window and sends. If another uploader's window is open, read nothing
        # either: returning lets the lock go to it (anyio's lock hands over to waiters in order).
        stream_id = _WAITING_FOR_FLOW.get()
        if stream_id is not None and self._send_window(stream_id) > 0:
            return []
        if self._an_uploader_can_send():
            await asyncio.sleep(0)  # let the uploader take the lock before this reader queues for it again
            return []
        events: list[typing.Any] = await super()._read_incoming_data(request)
        return events


def install_flow_fix() -> bool:
    """Make httpcore build :class:`FlowSafeHTTP2Connection` (it imports the class by name when connecting)."""
    needed = ("_wait_for_outgoing_flow", "_read_incoming_data", "handle_async_request")
    if not all(hasattr(_ORIGINAL_HTTP2, name) for name in needed):
        _LOGGER.warning("httpcore changed; HTTP/2 flow-control fix not installed")
        return False
    _httpcore_http2.AsyncHTTP2Connection = FlowSafeHTTP2Connection  # type: ignore[misc]
    return True


install_flow_fix()
