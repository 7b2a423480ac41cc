"""The AVS client: one TLS HTTP/2 connection, the downchannel, events, ping, and reconnection.

Lifecycle (protocol reference §1.4, §3): open the connection -> ``GET /v20160207/directives`` (the downchannel,
read by its own task for the life of the connection) -> on 200 send ``System.SynchronizeState`` with the full
context -> CONNECTED. On downchannel end, GOAWAY, a transport error, a failed ping, a 403 or ``SetEndpoint``: tear
the connection down and open a new one after the back-off (§3.5).

httpx/httpcore notes that shape this module:
- httpcore's HTTP/2 path sends a stream's whole request body before it reads that stream's response, so an event
  holds the "one event awaiting response headers" lock for its whole upload; the downchannel is read by its own
  task, so a StopCapture arrives while the Recognize audio is still being uploaded.
- After a GOAWAY httpcore raises on every later read of the connection: the downchannel task sees it at once and
  the supervisor reconnects. An event the GOAWAY refused (its stream id was above the server's last stream id)
  was not processed: it is resent with a fresh body on the next connection (Recognize audio cannot be replayed,
  so a refused Recognize fails with StreamRefusedError instead).
- Cancelling an upload half way leaves the stream open on the server (httpcore sends no RST_STREAM), so uploads
  are ended by ending the audio iterator, never by cancelling ``send_event``.

This module never sees httpx: requests go through :class:`avsd.avs.http.Http2Connection`, the one HTTP
boundary, which raises only avsd errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import certifi

from avsd.avs.attachments import AttachmentStore
from avsd.avs.auth import TokenProvider
from avsd.avs.backoff import RECONNECT_TABLE_S, Backoff
from avsd.avs.context import ContextRegistry
from avsd.avs.http import Http2Connection, HttpStream
from avsd.avs.messages import (
    DIRECTIVES_PATH,
    EVENTS_PATH,
    PING_PATH,
    Directive,
    Event,
    ExceptionErrorType,
    exception_encountered,
    parse_exception_body,
)
from avsd.avs.multipart import boundary_from_content_type, closing_delimiter, new_boundary, part_header
from avsd.avs.response import DirectiveStreamReader
from avsd.backends import DAEMON_BACKENDS
from avsd.errors import (
    AuthError,
    AuthUnavailableError,
    AvsConnectionError,
    AvsError,
    AvsServerError,
    ConnectionClosedError,
    CredentialsError,
    MultipartError,
    NotConnectedError,
    StreamRefusedError,
)
from avsd.observers import Observers
from avsd.tasks import TaskSet

_LOGGER = logging.getLogger(__name__)

REGIONS = {
    "NA": "https://alexa.na.gateway.devices.a2z.com",
    "EU": "https://alexa.eu.gateway.devices.a2z.com",
    "FE": "https://alexa.fe.gateway.devices.a2z.com",
}

# Events that must carry the full context (§5.2).
CONTEXT_EVENTS = frozenset({"SpeechRecognizer.Recognize", "System.SynchronizeState"})
MAX_EVENT_STREAMS = 8  # SDK: 10 streams per connection, 2 kept for the downchannel and ping (§1.3)
MAX_EXCEPTION_BODY = 4096
MAX_RESENDS = 3  # a refused event is resent on at most this many new connections


def resolve_endpoint(value: str) -> str:
    """A region name (NA / EU / FE) or a URL -> the base URL without a trailing slash."""
    region = REGIONS.get(value.strip().upper())
    return region if region else value.strip().rstrip("/")


def make_ssl_context(ca_file: str = "") -> ssl.SSLContext:
    """System-independent default trust (certifi) plus an extra CA such as the emulator's self-signed cert."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class ConnectionState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    WAITING_TO_RETRY = "waiting_to_retry"
    AUTH_FAILED = "auth_failed"


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    backend: str = field(
        default="avs",
        metadata={
            "help": "avs = Amazon (needs avsd login); assistant = the offline assistant, in this process",
            "choices": DAEMON_BACKENDS,
        },
    )
    endpoint: str = field(
        default="NA", metadata={"help": "AVS region NA / EU / FE, or a base URL such as the emulator's"}
    )
    ca_file: str = field(default="", metadata={"help": "extra CA certificate to trust (the emulator's)"})
    ping_idle_s: float = field(
        default=300.0, metadata={"help": "send GET /ping after this long without traffic", "min": 1.0}
    )
    ping_timeout_s: float = field(
        default=30.0, metadata={"help": "no ping answer within this -> reconnect", "min": 0.1}
    )
    connect_timeout_s: float = field(
        default=10.0, metadata={"help": "the downchannel must answer within this", "min": 0.1}
    )
    event_timeout_s: float = field(
        default=30.0, metadata={"help": "an event stream idle this long is abandoned", "min": 0.1}
    )
    stable_after_s: float = field(
        default=60.0, metadata={"help": "a connection up this long resets the back-off", "min": 0.0}
    )
    backoff_s: tuple[float, ...] = field(
        default=RECONNECT_TABLE_S,
        metadata={"help": "reconnect back-off table, seconds (x0.66-1.5 jitter)", "gt": 0.0, "min_items": 1},
    )


@dataclass(frozen=True, slots=True)
class EventResult:
    status: int
    directives: tuple[Directive, ...] = ()


class _Reconnect(Exception):
    """Raised inside a connection to make the supervisor open a new one."""


class _Connection:
    """One HTTP/2 connection (an :class:`Http2Connection` of the HTTP boundary) and its liveness."""

    def __init__(self, base_url: str, ssl_context: ssl.SSLContext, settings: ConnectionSettings) -> None:
        self.base_url = base_url
        self.http = Http2Connection(
            ssl_context, timeout_s=settings.event_timeout_s, connect_timeout_s=settings.connect_timeout_s
        )
        self.last_activity = time.monotonic()
        self.reconnect = asyncio.Event()
        self.reconnect_reason = ""

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def request_reconnect(self, reason: str) -> None:
        if not self.reconnect.is_set():
            self.reconnect_reason = reason
            self.reconnect.set()

    async def aclose(self) -> None:
        await self.http.aclose()


class AvsClient:
    """Keeps the device connected to AVS and sends its events. Run :meth:`run` as a task."""

    def __init__(
        self,
        settings: ConnectionSettings,
        tokens: TokenProvider,
        *,
        context: ContextRegistry,
        on_directive: Callable[[Directive], None],
        attachments: AttachmentStore | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.context = context
        self.attachments = attachments or AttachmentStore()
        self._on_directive = on_directive
        self._ssl_context = ssl_context or make_ssl_context(settings.ca_file)
        self._base_url = resolve_endpoint(settings.endpoint)
        self._conn: _Connection | None = None
        self._state = ConnectionState.DISCONNECTED
        # The connection has one owner, this client; everyone else observes it (isolated observers).
        self._state_observers: Observers[ConnectionState] = Observers("connection")
        self.event_observers: Observers[Event] = Observers("event sent")
        self.directive_observers: Observers[Directive] = Observers("directive received")
        self._connected = asyncio.Event()
        self._state_changed = asyncio.Event()  # set and replaced on every state change
        self._header_lock = asyncio.Lock()  # one event awaiting response headers at a time (§1.3)
        self._streams = asyncio.Semaphore(MAX_EVENT_STREAMS)
        self._background = TaskSet(_LOGGER, "avs-")
        self.connect_count = 0
        self.last_error: str = ""

    # ----- observable state -------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def base_url(self) -> str:
        return self._base_url

    def add_state_observer(self, observer: Callable[[ConnectionState], None]) -> Callable[[], None]:
        return self._state_observers.add(observer)

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()
        if state is ConnectionState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        _LOGGER.info("AVS connection %s", state)
        self._state_observers.notify(state)

    async def wait_connected(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    def set_endpoint(self, endpoint: str) -> None:
        """``System.SetEndpoint``: switch the base URL and reconnect (§1.1)."""
        new_url = resolve_endpoint(endpoint)
        if new_url == self._base_url:
            return
        _LOGGER.info("switching AVS endpoint to %s", new_url)
        self._base_url = new_url
        if self._conn is not None:
            self._conn.request_reconnect("endpoint changed")

    # ----- supervisor ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, stay connected, reconnect with back-off. Returns only when cancelled."""
        backoff = Backoff(self.settings.backoff_s)
        try:
            while True:
                self._set_state(ConnectionState.CONNECTING)
                started = time.monotonic()
                try:
                    reason = await self._run_connection()
                    _LOGGER.info("reconnecting: %s", reason)
                except AuthUnavailableError as exc:
                    # LWA unreachable or 5xx: the device is offline, not unlinked. Retried with back-off.
                    self.last_error = str(exc)
                    _LOGGER.warning("Login with Amazon unreachable (%s); offline, retrying", exc.description)
                except AuthError as exc:
                    # Only a real refusal (invalid_grant ...) means the link is gone.
                    self.last_error = str(exc)
                    _LOGGER.error(
                        "AVS login refused (%s); run `avsd login` to link the device again", exc.error
                    )
                    self._set_state(ConnectionState.AUTH_FAILED)
                except CredentialsError as exc:
                    self.last_error = str(exc)
                    _LOGGER.error("%s", exc)
                    self._set_state(ConnectionState.AUTH_FAILED)
                except AvsError as exc:
                    self.last_error = str(exc)
                    _LOGGER.warning("AVS connection lost: %s", exc)
                if time.monotonic() - started >= self.settings.stable_after_s:
                    backoff.reset()
                if self._state is not ConnectionState.AUTH_FAILED:
                    self._set_state(ConnectionState.WAITING_TO_RETRY)
                delay = backoff.next_delay()
                _LOGGER.debug("next connection attempt in %.2f s", delay)
                await asyncio.sleep(delay)
        finally:
            await self._background.cancel_all()
            self._set_state(ConnectionState.DISCONNECTED)

    async def _run_connection(self) -> str:
        conn = _Connection(self._base_url, self._ssl_context, self.settings)
        self._conn = conn
        downchannel_open = asyncio.Event()
        try:
            try:
                async with asyncio.TaskGroup() as group:
                    downchannel = group.create_task(
                        self._read_downchannel(conn, downchannel_open), name="downchannel"
                    )
                    try:
                        async with asyncio.timeout(self.settings.connect_timeout_s):
                            await _first_of(downchannel_open.wait(), downchannel)
                    except TimeoutError:
                        raise AvsConnectionError("downchannel did not answer in time") from None
                    await self._synchronize(conn)
                    self.connect_count += 1
                    self._set_state(ConnectionState.CONNECTED)
                    group.create_task(self._ping_loop(conn), name="ping")
                    await conn.reconnect.wait()
                    raise _Reconnect(conn.reconnect_reason)
            except BaseExceptionGroup as group_error:
                # TaskGroup wraps whatever ended the connection; surface the one error that matters.
                raise _unwrap(group_error) from None
        except _Reconnect as exc:
            return str(exc)
        finally:
            self._conn = None
            self.attachments.fail_incomplete(AvsConnectionError("connection closed"))
            await conn.aclose()
        return "connection ended"  # pragma: no cover - the group always raises

    async def _synchronize(self, conn: _Connection) -> None:
        """``System.SynchronizeState`` with the full context; the client is connected only after its 2xx."""
        event = Event.new("System", "SynchronizeState", context=self.context.gather())
        await self._send(conn, event, None)

    # ----- downchannel --------------------------------------------------------------------------------------

    async def _read_downchannel(self, conn: _Connection, opened: asyncio.Event) -> None:
        token = await self.tokens.get_token()
        async with conn.http.open(
            "GET",
            conn.base_url + DIRECTIVES_PATH,
            headers={"authorization": f"Bearer {token}"},
            no_read_timeout=True,  # long gaps between directives are normal
        ) as response:
            conn.touch()
            await self._check_status(response, token, conn)
            reader = DirectiveStreamReader(
                boundary_from_content_type(response.headers.get("content-type", "")),
                self.attachments,
                self._deliver_directive,
                self._report_bad_directive,
            )
            opened.set()
            _LOGGER.debug("downchannel open")
            try:
                async for chunk in response.chunks():
                    conn.touch()
                    reader.feed(chunk)
            except MultipartError as exc:
                self._report_bad_directive(f"malformed downchannel multipart: {exc}", "")
                raise
        raise AvsConnectionError("downchannel closed by the server")

    def _deliver_directive(self, directive: Directive) -> None:
        _LOGGER.info("directive %s", directive.qualified_name)
        _LOGGER.debug("directive payload %s", directive.payload)
        try:
            self.directive_observers.notify(directive)
            self._on_directive(directive)
        except Exception:
            # A broken handler must not take the downchannel down with it.
            _LOGGER.exception("directive sink failed on %s", directive.qualified_name)

    def _report_bad_directive(self, message: str, raw: str) -> None:
        """Malformed directive or multipart: ExceptionEncountered, logged; the connection carries on (§9.3)."""
        _LOGGER.warning("bad directive from AVS: %s", message)
        event = exception_encountered(raw, ExceptionErrorType.UNEXPECTED_INFORMATION_RECEIVED, message)
        self.spawn(self._send_quietly(event), name="exception-encountered")

    async def _send_quietly(self, event: Event) -> None:
        try:
            await self.send_event(event)
        except AvsError as exc:
            _LOGGER.warning("could not send %s: %s", event.qualified_name, exc)

    # ----- ping ---------------------------------------------------------------------------------------------

    async def _ping_loop(self, conn: _Connection) -> None:
        while True:
            idle = time.monotonic() - conn.last_activity
            if idle < self.settings.ping_idle_s:
                await asyncio.sleep(self.settings.ping_idle_s - idle)
                continue
            await self.ping(conn)

    async def ping(self, conn: _Connection | None = None) -> None:
        """``GET /ping``; anything but 204 within the timeout means the connection is dead (§3.3)."""
        conn = conn or self._conn
        if conn is None:
            raise NotConnectedError("not connected")
        token = await self.tokens.get_token()
        conn.touch()
        try:
            async with (
                asyncio.timeout(self.settings.ping_timeout_s),
                conn.http.open("GET", conn.base_url + PING_PATH, headers={"authorization": f"Bearer {token}"}) as reply,
            ):
                conn.touch()
                if reply.status != 204:
                    # A 403 here invalidates the token and reconnects, like on any other stream (§3.3).
                    await self._check_status(reply, token, conn)
                    raise AvsConnectionError(f"ping answered {reply.status}")
        except TimeoutError:
            raise AvsConnectionError("ping timed out") from None
        _LOGGER.debug("ping ok")

    # ----- events -------------------------------------------------------------------------------------------

    async def send_event(self, event: Event, audio: AsyncIterable[bytes] | None = None) -> EventResult:
        """POST one event (and Recognize audio, streamed as it is produced). Directives in the answer are
        delivered to ``on_directive`` as each one completes and also returned.

        Raises NotConnectedError, AvsServerError (non-2xx with its exception code), AvsConnectionError.
        """
        conn = self._conn
        if conn is None or self._state is not ConnectionState.CONNECTED:
            raise NotConnectedError(f"cannot send {event.qualified_name}: not connected to AVS")
        if event.context is None and event.qualified_name in CONTEXT_EVENTS:
            event = event.with_context(self.context.gather())
        for resends in range(MAX_RESENDS + 1):
            try:
                return await self._send(conn, event, audio)
            except (StreamRefusedError, ConnectionClosedError) as exc:
                # Refused: not processed, safe to resend. Closed before the answer: maybe processed; resent with the
                # same messageId (at least once). Recognize audio cannot be replayed: that one fails.
                conn.request_reconnect("the server is closing the connection (GOAWAY)")
                if audio is not None or resends == MAX_RESENDS:
                    raise
                _LOGGER.info("%s: %s; resending on the next connection", event.qualified_name, exc.code)
                conn = await self._next_connection(conn, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _next_connection(self, old: _Connection, refused: AvsConnectionError) -> _Connection:
        """The first CONNECTED connection after ``old``; NotConnectedError if none within the event timeout."""
        try:
            async with asyncio.timeout(self.settings.event_timeout_s):
                while True:
                    changed = self._state_changed
                    conn = self._conn
                    if conn is not None and conn is not old and self._state is ConnectionState.CONNECTED:
                        return conn
                    await changed.wait()
        except TimeoutError:
            raise NotConnectedError(f"not reconnected within {self.settings.event_timeout_s} s") from refused

    async def _send(self, conn: _Connection, event: Event, audio: AsyncIterable[bytes] | None) -> EventResult:
        try:
            token = await self.tokens.get_token()
        except (AuthError, CredentialsError) as exc:
            # The sender of an event only ever sees AvsError; the supervisor reports the login problem itself.
            raise NotConnectedError(f"cannot send {event.qualified_name}: no access token ({exc})") from exc
        boundary = new_boundary()
        # Without audio the body is bytes: httpx can send it again, and a resend gets a fresh one anyway.
        body = event_body(boundary, event) if audio is None else _event_body(boundary, event, audio, conn)
        headers = {
            "authorization": f"Bearer {token}",
            "content-type": f"multipart/form-data; boundary={boundary}",
        }
        _LOGGER.info("event %s", event.qualified_name)
        self.event_observers.notify(event)
        async with self._streams, contextlib.AsyncExitStack() as stack:
            async with self._header_lock:
                response = await stack.enter_async_context(
                    conn.http.open("POST", conn.base_url + EVENTS_PATH, headers=headers, body=body)
                )
            conn.touch()
            if response.status == 204:
                return EventResult(204)
            await self._check_status(response, token, conn)
            directives: list[Directive] = []

            def collect(directive: Directive) -> None:
                directives.append(directive)
                self._deliver_directive(directive)

            reader = DirectiveStreamReader(
                boundary_from_content_type(response.headers.get("content-type", "")),
                self.attachments,
                collect,
                self._report_bad_directive,
            )
            try:
                async for chunk in response.chunks():
                    conn.touch()
                    reader.feed(chunk)
                reader.finish()
            except MultipartError as exc:
                self._report_bad_directive(f"malformed multipart answer to {event.qualified_name}: {exc}", "")
                raise
            return EventResult(response.status, tuple(directives))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _check_status(self, response: HttpStream, token: str, conn: _Connection) -> None:
        """Non-2xx -> AvsServerError; a 403 also refreshes the token and reconnects (§2.4, §9.1)."""
        if 200 <= response.status < 300:
            return
        body = await response.read(MAX_EXCEPTION_BODY)
        error = parse_exception_body(response.status, body)
        if response.status == 403:
            self.tokens.invalidate(token)
            conn.request_reconnect("AVS rejected the access token (403)")
        raise error

    # ----- background tasks ---------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        return self._background.spawn(coro, name)


def event_body(boundary: str, event: Event) -> bytes:
    """The multipart body of an event without audio: the ``metadata`` JSON part only."""
    return _metadata_part(boundary, event) + closing_delimiter(boundary)


def _metadata_part(boundary: str, event: Event) -> bytes:
    return (
        part_header(
            boundary,
            [
                ("Content-Disposition", 'form-data; name="metadata"'),
                ("Content-Type", "application/json; charset=UTF-8"),
            ],
            first=True,
        )
        + event.to_json()
    )


async def _event_body(
    boundary: str, event: Event, audio: AsyncIterable[bytes], conn: _Connection
) -> AsyncIterator[bytes]:
    """multipart/form-data: the ``metadata`` JSON part, then (Recognize) the ``audio`` part streamed frame by
    frame as captured (§4.2, §4.3): each frame goes out as its own DATA frame; nothing is buffered."""
    yield _metadata_part(boundary, event) + part_header(
        boundary,
        [("Content-Disposition", 'form-data; name="audio"'), ("Content-Type", "application/octet-stream")],
        first=False,
    )
    async for frame in audio:
        conn.touch()
        yield frame
    yield closing_delimiter(boundary)


async def _first_of(waiter: Any, task: asyncio.Task[None]) -> None:
    """Wait for ``waiter`` unless ``task`` finishes (raising its error) first."""
    wait_task = asyncio.ensure_future(waiter)
    try:
        done, _ = await asyncio.wait({wait_task, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        wait_task.cancel()
    if task in done:
        task.result()
        raise AvsConnectionError("downchannel ended before it opened")


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that ended a connection's task group (the first that is not a cancellation)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _unwrap(exc)
        if isinstance(exc, _Reconnect):
            return exc
        if not isinstance(exc, asyncio.CancelledError):
            if isinstance(exc, AvsError | AuthError | CredentialsError):
                return exc
            if isinstance(exc, Exception):
                _LOGGER.exception("unexpected error in the AVS connection", exc_info=exc)
                return AvsConnectionError(f"unexpected {type(exc).__name__}: {exc}")
            return exc
    return AvsConnectionError("connection cancelled")


__all__ = [
    "REGIONS",
    "AvsClient",
    "AvsServerError",
    "ConnectionSettings",
    "ConnectionState",
    "EventResult",
    "make_ssl_context",
    "resolve_endpoint",
]
