"""One server-side HTTP/2 connection: the sans-IO ``h2`` state machine driven over an asyncio TLS stream.

* One reader task per connection (:meth:`ServerConnection.run`); each request gets its own handler task.
* Request bodies: DATA is queued on the :class:`RequestStream` and acknowledged to the flow-control window
  when the handler *consumes* it. The queue is therefore bounded by the stream window the server advertises
  (64 KiB by default): a peer cannot send more than it was granted. Abandoned streams are acked at once.
* Response bodies: :meth:`send_data` never buffers beyond the peer's window; it waits for WINDOW_UPDATE (and
  for the socket to drain) before sending more.
* Closing: :meth:`close` cancels and awaits every handler task; nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from avsd.errors import AvsConnectionError
from avsd.tasks import TaskSet

_log = logging.getLogger(__name__)

MAX_CONCURRENT_STREAMS = 10
_READ_SIZE = 65536
_CLOSE_TIMEOUT_S = 1.0
_ids = itertools.count(1)


def next_connection_id() -> int:
    """Connection ids are shared by HTTP/2 and HTTP/1.1 connections (one sequence in logs and records)."""
    return next(_ids)


class StreamGoneError(AvsConnectionError):
    """The stream was reset by the peer (or the connection closed) while a handler used it."""

    code = "emulator-stream-gone"


class RequestStream:
    """The request side of one stream, as the handler sees it."""

    def __init__(self, conn: ServerConnection, stream_id: int, headers: dict[str, str]) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.headers = headers
        self.method = headers.get(":method", "")
        self.path = headers.get(":path", "")
        self._chunks: deque[tuple[float, bytes, int]] = deque()
        self._ended = False
        self.reset = False
        self.response_started = False
        self.response_ended = False
        self._changed = asyncio.Event()
        self.abandoned = False
        self.gone = (
            asyncio.Event()
        )  # set when the stream is reset, the connection closes, or we end it for good

    def _feed(self, now: float, data: bytes, flow_len: int) -> None:
        if self.abandoned:
            self.conn.ack(self.stream_id, flow_len)
            return
        self._chunks.append((now, data, flow_len))
        self._changed.set()

    def _end(self) -> None:
        self._ended = True
        self._changed.set()

    def _reset(self) -> None:
        self.reset = True
        self._changed.set()
        self.gone.set()

    async def read(self) -> tuple[float, bytes] | None:
        """The next chunk ``(arrival time, bytes)``, or None when the request body ended."""
        while True:
            if self._chunks:
                now, data, flow_len = self._chunks.popleft()
                self.conn.ack(self.stream_id, flow_len)
                return now, data
            if self.reset:
                raise StreamGoneError(f"stream {self.stream_id} was reset")
            if self._ended:
                return None
            self._changed.clear()
            await self._changed.wait()

    async def read_all(self, limit: int) -> bytes | None:
        """The whole body, or None if it exceeds ``limit`` (the rest is then discarded)."""
        body = bytearray()
        while (item := await self.read()) is not None:
            body += item[1]
            if len(body) > limit:
                self.abandon()
                return None
        return bytes(body)

    def abandon(self) -> None:
        """Discard the rest of the body (acknowledging it so the peer is never blocked)."""
        self.abandoned = True
        while self._chunks:
            self.conn.ack(self.stream_id, self._chunks.popleft()[2])


Handler = Callable[["ServerConnection", RequestStream], Awaitable[None]]


def _consume(future: asyncio.Future[None]) -> None:
    """Retrieve a finished close waiter's outcome (a reset connection's error is expected, not news)."""
    if not future.cancelled():
        future.exception()


class ServerConnection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        clock: Callable[[], float],
    ) -> None:
        self.id = next_connection_id()
        self._reader, self._writer = reader, writer
        self._handler, self._clock = handler, clock
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS},
        )
        self.streams: dict[int, RequestStream] = {}
        self._tasks = TaskSet(_log, f"emulator-c{self.id}-")
        self._send_locks: dict[int, asyncio.Lock] = {}
        self._window_changed = asyncio.Event()
        self.closed = asyncio.Event()
        self.goaway_sent = False
        self.downchannel_id: int | None = None
        self._close_waiter: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Handshake, then read frames until EOF, a protocol error or :meth:`close`."""
        ssl_obj: ssl.SSLObject | None = self._writer.get_extra_info("ssl_object")
        if ssl_obj is None or ssl_obj.selected_alpn_protocol() != "h2":
            # AVS is HTTP/2 only (§1.3): a client that did not agree on h2 gets the connection closed.
            _log.info("connection %d refused: ALPN did not select h2", self.id)
            await self.close()
            return
        self.h2.initiate_connection()
        await self.flush()
        try:
            while not self.closed.is_set():
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    break
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    _log.warning("connection %d: HTTP/2 protocol error: %s", self.id, exc)
                    await self.flush()
                    break
                for event in events:
                    self._on_event(event)
                await self.flush()
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            _log.debug("connection %d: transport error %r", self.id, exc)
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the socket, then cancel and await every handler task. Idempotent."""
        if not self.closed.is_set():
            self.closed.set()
            self._window_changed.set()
            for stream in self.streams.values():
                stream._reset()
            self._writer.close()
        await self._tasks.cancel_all()
        # One waiter task for every closer (GOAWAY's task, Emulator.stop): a task cancelled while awaiting
        # wait_closed() cancels the stream's shared "closed" future, and every other awaiter then raised
        # CancelledError although nothing cancelled it. asyncio.wait never cancels what it waits for.
        if self._close_waiter is None:
            self._close_waiter = asyncio.ensure_future(self._writer.wait_closed())
            self._close_waiter.add_done_callback(_consume)
        await asyncio.wait({self._close_waiter}, timeout=_CLOSE_TIMEOUT_S)
        self._close_waiter.cancel()  # no-op when done; else give up on a peer that never completes the close

    def abort(self) -> None:
        """Drop the TCP connection at once, as a network outage does (no GOAWAY, no TLS close_notify); the
        reader then ends and :meth:`run` closes the rest."""
        self._writer.transport.abort()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task owned by this connection (cancelled and awaited by :meth:`close`)."""
        return self._tasks.spawn(coro, name)

    @property
    def busy_streams(self) -> int:
        """Open streams other than the downchannel."""
        return sum(
            1 for sid, s in self.streams.items() if sid != self.downchannel_id and not s.response_ended
        )

    # ------------------------------------------------------------------------------------------ events in

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            headers = {str(k): str(v) for k, v in (event.headers or [])}
            stream = RequestStream(self, event.stream_id, headers)
            self.streams[event.stream_id] = stream
            if event.stream_ended is not None:
                stream._end()
            self.spawn(self._run_handler(stream), f"s{event.stream_id}")
        elif isinstance(event, h2.events.DataReceived):
            stream_id = event.stream_id or 0
            length = event.flow_controlled_length or 0
            known = self.streams.get(stream_id)
            if known is None:
                self.ack(stream_id, length)
            else:
                known._feed(self._clock(), event.data or b"", length)
            if event.stream_ended is not None and known is not None:
                known._end()
        elif isinstance(event, h2.events.StreamEnded):
            if (s := self.streams.get(event.stream_id or 0)) is not None:
                s._end()
        elif isinstance(event, h2.events.StreamReset):
            if (s := self.streams.get(event.stream_id or 0)) is not None:
                s._reset()
            self._window_changed.set()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._window_changed.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            _log.info("connection %d: client sent GOAWAY (%s)", self.id, event.error_code)
            self.closed.set()
            self._writer.close()

    async def _run_handler(self, stream: RequestStream) -> None:
        try:
            await self._handler(self, stream)
        except StreamGoneError:
            _log.debug("connection %d stream %d gone", self.id, stream.stream_id)
        finally:
            stream.response_ended = True
            stream.abandon()
            self._send_locks.pop(stream.stream_id, None)
            with contextlib.suppress(StreamGoneError):
                await self.flush()

    # ------------------------------------------------------------------------------------------ frames out

    def ack(self, stream_id: int, length: int) -> None:
        if length and not self.closed.is_set():
            self.h2.acknowledge_received_data(length, stream_id)
            self._writer.write(self.h2.data_to_send())

    async def flush(self) -> None:
        if self.closed.is_set():
            return
        data = self.h2.data_to_send()
        if data:
            self._writer.write(data)
        try:
            await self._writer.drain()
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            raise StreamGoneError(f"connection {self.id} lost: {exc!r}") from exc

    def _check(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if self.closed.is_set() or stream is None or stream.reset:
            raise StreamGoneError(f"stream {stream_id} is gone")

    async def send_headers(
        self,
        stream_id: int,
        status: int,
        headers: Iterable[tuple[str, str]] = (),
        *,
        end_stream: bool = False,
    ) -> None:
        self._check(stream_id)
        stream = self.streams[stream_id]
        stream.response_started = True
        try:
            self.h2.send_headers(stream_id, [(":status", str(status)), *headers], end_stream=end_stream)
        except h2.exceptions.H2Error as exc:
            raise StreamGoneError(f"cannot send headers on stream {stream_id}: {exc}") from exc
        if end_stream:
            stream.response_ended = True
        await self.flush()

    async def send_data(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        """Send ``data`` respecting the stream and connection windows (waits for WINDOW_UPDATE)."""
        lock = self._send_locks.setdefault(stream_id, asyncio.Lock())
        async with lock:
            view = memoryview(data)
            while True:
                self._check(stream_id)
                window = min(self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size)
                if window <= 0 and view:
                    self._window_changed.clear()
                    await self._window_changed.wait()
                    continue
                chunk, view = view[:window], view[window:]
                last = not view
                try:
                    self.h2.send_data(stream_id, bytes(chunk), end_stream=end_stream and last)
                except h2.exceptions.H2Error as exc:
                    raise StreamGoneError(f"cannot send data on stream {stream_id}: {exc}") from exc
                await self.flush()
                if last:
                    break
            if end_stream:
                self.streams[stream_id].response_ended = True

    async def end_stream(self, stream_id: int) -> None:
        await self.send_data(stream_id, b"", end_stream=True)

    async def reset_stream(self, stream_id: int, error_code: ErrorCodes = ErrorCodes.INTERNAL_ERROR) -> None:
        self._check(stream_id)
        self.streams[stream_id].response_ended = True
        with contextlib.suppress(h2.exceptions.H2Error):
            self.h2.reset_stream(stream_id, error_code)
        await self.flush()

    async def goaway(self, grace_s: float) -> None:
        """GOAWAY(NO_ERROR, last = highest stream), then close when event streams finish or after grace."""
        if self.closed.is_set() or self.goaway_sent:
            return
        self.goaway_sent = True
        last = max(self.streams, default=0)
        self.h2.close_connection(ErrorCodes.NO_ERROR, last_stream_id=last)
        with contextlib.suppress(StreamGoneError):
            await self.flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        # Polling (not an Event): "busy" changes in several places and the grace is short.
        while self.busy_streams and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await self.close()

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "streams": len(self.streams), "closed": self.closed.is_set()}
