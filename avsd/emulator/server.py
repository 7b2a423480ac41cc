"""The emulator: a local, protocol-faithful AVS server over real HTTP/2 + TLS (protocol reference §11.2).

Routes (anything else -> 404)::

    GET  /v20160207/directives          downchannel: 200 at once, open for the life of the connection
    POST /v20160207/events              multipart upload, parsed incrementally (see events.py)
    GET  /ping                          204
    PUT  /v1/devices/@self/capabilities 204 / 400 {"message": ...}
    POST /auth/o2/token, /auth/O2/token, /auth/o2/create/codepair, /auth/O2/create/codepair; GET /ap/oa  (LWA)

Tasks: the listening server accepts; one reader task per connection (``ServerConnection.run``) spawns one task
per stream; emulator-level tasks run the scenario timeline and connection-wide faults. :meth:`Emulator.stop`
cancels and awaits all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from avsd.audio.endpointer import EndpointerSettings
from avsd.avs.messages import DIRECTIVES_PATH, EVENTS_PATH, PING_PATH, Directive, new_message_id
from avsd.emulator.brains import Brain, ScenarioBrain
from avsd.emulator.events import EventHandler
from avsd.emulator.faults import Fault, FaultBook, FaultKind, FaultTarget
from avsd.emulator.h2conn import RequestStream, ServerConnection, StreamGoneError, next_connection_id
from avsd.emulator.http1 import Http1Connection
from avsd.emulator.lwa import LwaServer
from avsd.emulator.media import MediaLibrary
from avsd.emulator.plain import CAPABILITIES_PATH, MAX_FORM_BYTES, PlainRoutes, is_plain_route
from avsd.emulator.record import RecordedRequest, RecordWriter, redact_headers
from avsd.emulator.replies import (
    DOWNCHANNEL_CONTENT_TYPE,
    PlainRequest,
    PlainResponse,
    encode_downchannel_close,
    encode_push,
    exception_response,
)
from avsd.emulator.scenario import Rule, RuleBook, Scenario
from avsd.emulator.tls import make_self_signed, server_ssl_context
from avsd.errors import AvsConnectionError
from avsd.logredact import quiet_protocol_loggers
from avsd.tasks import TaskSet

_log = logging.getLogger(__name__)

_MAX_CAPABILITIES_BYTES = 1024 * 1024
_DOWNCHANNEL_FAULTS = frozenset({FaultKind.STATUS, FaultKind.RST_STREAM})
_PUSH_FAULTS = frozenset({FaultKind.MALFORMED_JSON, FaultKind.MALFORMED_MULTIPART})


class NoDownchannelError(AvsConnectionError):
    """A directive was to be pushed but no downchannel is open."""

    code = "emulator-no-downchannel"


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    """Tunables of ``avsd emulator``."""

    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on"})
    port: int = field(default=8443, metadata={"help": "TCP port (0 = any free port)", "min": 0, "max": 65535})
    reply_text: str = field(
        default="", metadata={"help": "Text of the default Speak reply (empty = tell the time)"}
    )
    stop_capture: bool = field(
        default=True,
        metadata={"help": "Push StopCapture when cloud endpointing ends a NEAR/FAR_FIELD Recognize"},
    )
    accept_any_token: bool = field(
        default=False, metadata={"help": "Accept any bearer token (manual testing)"}
    )
    access_token_lifetime_s: float = field(
        default=3600.0, metadata={"help": "Lifetime of issued access tokens", "min": 1.0, "max": 86400.0}
    )
    goaway_grace_s: float = field(
        default=2.0,
        metadata={
            "help": "After GOAWAY, close the connection at the latest after this",
            "min": 0.0,
            "max": 60.0,
        },
    )
    auto_approve: bool = field(default=False, metadata={"help": "Approve CBL code pairs without a user"})


class Emulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_dir: Path | None = None,
        refresh_token: str | None = None,
        client_id: str | None = None,
        scenario: Scenario | None = None,
        access_token_lifetime_s: float = 3600.0,
        reply_text: str | None = None,
        record_path: Path | None = None,
        stop_capture: bool = True,
        auto_approve: bool = False,
        accept_any_token: bool = False,
        endpointer: EndpointerSettings | None = None,
        goaway_grace_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        brain: Brain | None = None,
        kept_records: int | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._cert_dir, self._own_cert_dir = cert_dir, cert_dir is None
        self.refresh_token = refresh_token or f"Atzr|emulator-{secrets.token_urlsafe(24)}"
        self.lwa = LwaServer(
            refresh_token=self.refresh_token,
            client_id=client_id,
            access_token_lifetime_s=access_token_lifetime_s,
            auto_approve=auto_approve,
            clock=clock,
        )
        self.scenario = scenario or Scenario()
        self.media = MediaLibrary(dict(self.scenario.media_playlists), clock=clock)
        self.plain = PlainRoutes(self.lwa, self.media)
        self.reply_text = reply_text or self.scenario.reply_text
        # Who answers what no scenario rule answers (emulator/brains.py); the default is today's behaviour.
        self.brain: Brain = brain or ScenarioBrain(self.reply_text)
        self.stop_capture = stop_capture
        self.accept_any_token = accept_any_token
        self.endpointer_settings = endpointer or EndpointerSettings()
        self.goaway_grace_s = goaway_grace_s
        self.clock = clock
        self.records: list[RecordedRequest] = []  # in arrival order; the latest ``kept_records`` of them
        self.kept_records = kept_records
        self.rules = RuleBook(self.scenario.rules)
        self.faults = FaultBook()
        self.connection_count = 0
        self.downchannel_count = 0
        self.base_url = ""
        self.ca_file = Path()
        self._record_writer = RecordWriter(record_path) if record_path else None
        self._connections: dict[int, ServerConnection] = {}
        self._conn_tasks = TaskSet(_log, "emulator-")
        self._tasks = TaskSet(_log, "emulator-")
        self._downchannels: list[tuple[ServerConnection, RequestStream]] = []
        self._pushed: set[tuple[int, int]] = set()  # downchannels that already carry a part
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._events = EventHandler(self)
        self._offline_until = 0.0  # clock() before which new connections are dropped (OFFLINE fault)

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        quiet_protocol_loggers()  # h2/hpack on the server side log the clients' headers at DEBUG
        if self._cert_dir is None:
            self._cert_dir = Path(tempfile.mkdtemp(prefix="avsd-emulator-"))
        cert, key = make_self_signed(self._cert_dir, hosts=_cert_hosts(self.host))
        self.ca_file = cert
        self._server = await asyncio.start_server(
            self._on_client,
            self.host,
            self.port,
            ssl=server_ssl_context(cert, key),
            ssl_handshake_timeout=10.0,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        url_host = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"https://{url_host}:{self.port}"
        self.media.base_url = self.base_url
        if self._record_writer is not None:
            self._record_writer.open()
        _log.info("AVS emulator listening on %s", self.base_url)

    async def stop(self) -> None:
        """Close every connection and await every task."""
        if self._server is not None:
            self._server.close()
        await self._tasks.cancel_all()
        for conn in list(self._connections.values()):
            await conn.close()
        await self._conn_tasks.cancel_all()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            self._server = None
        if self._record_writer is not None:
            self._record_writer.close()
        if self._own_cert_dir and self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return self._tasks.spawn(coro, name)

    def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback that starts our own task: on Python 3.11 asyncio.streams calls task.exception() on
        # the task it made for a coroutine callback, which raises when stop() has cancelled it.
        self._conn_tasks.spawn(self._serve(reader, writer), "connection")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.clock() < self._offline_until:
            # "No network": the TCP/TLS connection is dropped before a single HTTP/2 frame.
            writer.close()
            return
        ssl_obj = writer.get_extra_info("ssl_object")
        if ssl_obj is None or ssl_obj.selected_alpn_protocol() != "h2":
            # ALPN http/1.1 (or none): LWA and media are served, AVS routes answer 505 (plain.py).
            conn_id = next_connection_id()
            _log.info("connection %d (HTTP/1.1) from %s", conn_id, writer.get_extra_info("peername"))
            await self._serve_http1(reader, writer, conn_id)
            return
        conn = ServerConnection(reader, writer, self._handle, self.clock)
        self._connections[conn.id] = conn
        self.connection_count += 1
        self.notify()
        _log.info("connection %d from %s", conn.id, writer.get_extra_info("peername"))
        try:
            await conn.run()
        finally:
            self._connections.pop(conn.id, None)
            self._downchannels = [(c, s) for c, s in self._downchannels if c is not conn]
            self.notify()
            _log.info("connection %d closed", conn.id)

    # ------------------------------------------------------------------------------------------ test hooks

    def notify(self) -> None:
        """Wake everything waiting in :meth:`wait_for_event` & co."""
        self._changed.set()
        self._changed = asyncio.Event()

    # The ``timeout`` keyword is the agreed test API (tests read better with it than with asyncio.timeout).
    async def _wait_until(self, predicate: Callable[[], Any], timeout: float) -> Any:
        async with asyncio.timeout(timeout):
            while (result := predicate()) is None:
                await self._changed.wait()
        return result

    async def wait_for_event(
        self,
        qualified_name: str,
        *,
        timeout: float = 5.0,
        count: int = 1,
    ) -> RecordedRequest:
        """The ``count``-th request with event ``qualified_name`` (as soon as its JSON part was parsed)."""

        def found() -> RecordedRequest | None:
            hits = [r for r in self.records if r.qualified_name == qualified_name]
            return hits[count - 1] if len(hits) >= count else None

        result: RecordedRequest = await self._wait_until(found, timeout)
        return result

    async def wait_for_downchannel(self, *, timeout: float = 5.0, count: int = 1) -> None:
        """Return once the ``count``-th downchannel (over all connections) has been answered 200."""
        await self._wait_until(lambda: True if self.downchannel_count >= count else None, timeout)

    def add_rule(self, rule: Rule) -> None:
        self.rules.add_first(rule)

    def inject(self, fault: Fault) -> None:
        """Arm a per-request fault, or apply a connection-wide one at once."""
        _log.info("fault injected: %s", fault)
        if fault.kind is FaultKind.EXPIRE_TOKENS:
            self.lwa.expire_access_tokens()
        elif fault.kind is FaultKind.OFFLINE:
            self._offline_until = self.clock() + fault.seconds
            for conn in list(self._connections.values()):
                conn.abort()
        elif fault.kind is FaultKind.GOAWAY:
            for conn in list(self._connections.values()):
                self.spawn(conn.goaway(self.goaway_grace_s), f"goaway-c{conn.id}")
        elif fault.kind is FaultKind.CLOSE_DOWNCHANNEL:
            for conn, stream in self._open_downchannels():
                self.spawn(self._close_downchannel(conn, stream), f"close-dc-c{conn.id}")
        elif (
            fault.kind is FaultKind.RST_STREAM
            and fault.target is FaultTarget.DOWNCHANNEL
            and (open_dcs := self._open_downchannels())
        ):
            for conn, stream in open_dcs:
                self.spawn(self._reset_downchannel(conn, stream), f"rst-dc-c{conn.id}")
        else:
            self.faults.arm(fault)

    async def push_directive(
        self, directive: Directive | Mapping[str, Any], attachments: Mapping[str, bytes] | None = None
    ) -> None:
        """Push on the newest open downchannel; NoDownchannelError if there is none."""
        open_dcs = self._open_downchannels()
        if not open_dcs:
            raise NoDownchannelError("no downchannel is open")
        conn, stream = open_dcs[-1]
        if isinstance(directive, Directive):
            raw = directive.to_json()
        else:
            doc = dict(directive)
            raw = json.dumps(doc if "directive" in doc else {"directive": doc}).encode()
        await self.push_on(conn, stream, raw, attachments or {})

    # ------------------------------------------------------------------------------------------ downchannel

    def _open_downchannels(self) -> list[tuple[ServerConnection, RequestStream]]:
        return [(c, s) for c, s in self._downchannels if not c.closed.is_set() and not s.gone.is_set()]

    def downchannel_of(self, conn: ServerConnection) -> RequestStream | None:
        for c, s in reversed(self._open_downchannels()):
            if c is conn:
                return s
        return None

    async def push_on(
        self,
        conn: ServerConnection,
        stream: RequestStream,
        json_part: bytes,
        attachments: Mapping[str, bytes],
    ) -> None:
        key = (conn.id, stream.stream_id)
        fault = self.faults.take(FaultTarget.DOWNCHANNEL, kinds=_PUSH_FAULTS)
        data = encode_push(
            key not in self._pushed,
            json_part,
            attachments,
            malformed_json=fault is not None and fault.kind is FaultKind.MALFORMED_JSON,
            malformed_multipart=fault is not None and fault.kind is FaultKind.MALFORMED_MULTIPART,
        )
        self._pushed.add(key)
        _log.info(
            "push on connection %d downchannel: %d bytes%s",
            conn.id,
            len(data),
            f" ({fault.kind})" if fault else "",
        )
        await conn.send_data(stream.stream_id, data)

    async def _close_downchannel(self, conn: ServerConnection, stream: RequestStream) -> None:
        with contextlib.suppress(StreamGoneError):
            first = (conn.id, stream.stream_id) not in self._pushed
            await conn.send_data(stream.stream_id, encode_downchannel_close(first), end_stream=True)
        stream.gone.set()

    async def _reset_downchannel(self, conn: ServerConnection, stream: RequestStream) -> None:
        with contextlib.suppress(StreamGoneError):
            await conn.reset_stream(stream.stream_id)
        stream.gone.set()

    async def _downchannel(
        self, conn: ServerConnection, stream: RequestStream, record: RecordedRequest
    ) -> None:
        fault = self.faults.take(FaultTarget.DOWNCHANNEL, kinds=_DOWNCHANNEL_FAULTS)
        if fault is not None:
            record.fault = str(fault.kind)
            if fault.kind is FaultKind.RST_STREAM:
                await conn.reset_stream(stream.stream_id)
                return
            await self.respond_exception(conn, stream, record, fault.status, "injected fault")
            return
        await conn.send_headers(stream.stream_id, 200, [("content-type", DOWNCHANNEL_CONTENT_TYPE)])
        record.status = 200
        conn.downchannel_id = stream.stream_id
        self._downchannels.append((conn, stream))
        self.downchannel_count += 1
        if self.downchannel_count == 1 and self.scenario.timeline:
            self.spawn(self._run_timeline(), "timeline")
        self.notify()
        _log.info("connection %d: downchannel open on stream %d", conn.id, stream.stream_id)
        await stream.gone.wait()

    async def _run_timeline(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for item in self.scenario.timeline:
            await asyncio.sleep(max(0.0, start + item.at_s - loop.time()))
            if item.fault is not None:
                self.inject(item.fault)
            elif item.directive is not None:
                spec = item.directive
                try:
                    raw, attachments = await self._events.render(spec, None)
                    await self.push_directive(json.loads(raw), attachments)
                except (NoDownchannelError, StreamGoneError) as exc:
                    _log.warning("timeline %s at %.1f s not pushed: %s", spec.qualified_name, item.at_s, exc)

    # ------------------------------------------------------------------------------------------ routing

    def authorized(self, stream: RequestStream) -> bool:
        value = stream.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        return self.accept_any_token or self.lwa.is_valid_access_token(token.strip())

    def _open_record(
        self, conn_id: int, stream_id: int, method: str, path: str, headers: Mapping[str, str], version: str
    ) -> RecordedRequest:
        record = RecordedRequest(
            time=self.clock(),
            connection_id=conn_id,
            stream_id=stream_id,
            method=method,
            path=path,
            headers=redact_headers({k: v for k, v in headers.items() if not k.startswith(":")}),
            http_version=version,
        )
        self.records.append(record)
        if self.kept_records is not None and len(self.records) > self.kept_records:
            del self.records[: len(self.records) - self.kept_records]
        self.notify()
        return record

    def _close_record(self, record: RecordedRequest) -> None:
        record.body_complete.set()
        if self._record_writer is not None:
            self._record_writer.write(record)
        self.notify()

    async def _handle(self, conn: ServerConnection, stream: RequestStream) -> None:
        record = self._open_record(conn.id, stream.stream_id, stream.method, stream.path, stream.headers, "2")
        try:
            await self._route(conn, stream, record)
        finally:
            self._close_record(record)

    async def _route(self, conn: ServerConnection, stream: RequestStream, record: RecordedRequest) -> None:
        parts = urlsplit(stream.path)
        path, method = parts.path, stream.method
        if is_plain_route(method, path):
            record.status = await self.plain.serve_h2(conn, stream)
            return
        avs_routes = {
            ("GET", DIRECTIVES_PATH),
            ("POST", EVENTS_PATH),
            ("GET", PING_PATH),
            ("PUT", CAPABILITIES_PATH),
        }
        if (method, path) not in avs_routes:
            stream.abandon()
            await self.respond(conn, stream, record, 404)
            return
        if not self.authorized(stream):
            stream.abandon()
            await self.respond_exception(conn, stream, record, 403, "The request was not authorized")
            return
        if path == DIRECTIVES_PATH:
            await self._downchannel(conn, stream, record)
        elif path == EVENTS_PATH:
            await self._events.handle(conn, stream, record)
        elif path == PING_PATH:
            await self._ping(conn, stream, record)
        else:
            await self._capabilities(conn, stream, record)

    async def _ping(self, conn: ServerConnection, stream: RequestStream, record: RecordedRequest) -> None:
        stream.abandon()
        fault = self.faults.take(FaultTarget.PING)
        if fault is not None:
            record.fault = str(fault.kind)
            if fault.kind is FaultKind.NO_PING_ANSWER:
                await stream.gone.wait()
                return
            if fault.kind is FaultKind.STATUS:
                await self.respond_exception(conn, stream, record, fault.status, "injected fault")
                return
        await self.respond(conn, stream, record, 204)

    async def _capabilities(
        self, conn: ServerConnection, stream: RequestStream, record: RecordedRequest
    ) -> None:
        body = await stream.read_all(_MAX_CAPABILITIES_BYTES)
        record.body = body or b""
        problem = "body too large" if body is None else None
        if problem is None:
            try:
                doc = json.loads(body or b"")
            except ValueError:
                doc = None
            if not isinstance(doc, dict) or "envelopeVersion" not in doc:
                problem = "body must be a JSON object with envelopeVersion"
            elif not isinstance(doc.get("capabilities"), list):
                problem = "capabilities must be an array"
        if problem is None:
            await self.respond(conn, stream, record, 204)
            return
        payload = json.dumps({"message": problem}).encode()
        await self.respond(conn, stream, record, 400, [("content-type", "application/json")], payload)

    async def _serve_http1(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn_id: int
    ) -> None:
        async def handle(request: PlainRequest) -> PlainResponse:
            record = self._open_record(
                conn_id, request.request_number, request.method, request.target, request.headers, "1.1"
            )
            try:
                response = await self.plain.handle(request)
                record.status = response.status
                return response
            finally:
                self._close_record(record)

        connection = Http1Connection(reader, writer, handle, max_body=MAX_FORM_BYTES, connection_id=conn_id)
        await connection.run()

    # ------------------------------------------------------------------------------------------ responses

    async def respond(
        self,
        conn: ServerConnection,
        stream: RequestStream,
        record: RecordedRequest,
        status: int,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        hdrs = [*(headers or []), ("x-amzn-requestid", new_message_id())]
        if body and not any(k == "content-length" for k, _ in hdrs):
            hdrs.append(("content-length", str(len(body))))
        record.status = status
        await conn.send_headers(stream.stream_id, status, hdrs, end_stream=not body)
        if body:
            await conn.send_data(stream.stream_id, body, end_stream=True)

    async def respond_exception(
        self,
        conn: ServerConnection,
        stream: RequestStream,
        record: RecordedRequest,
        status: int,
        description: str,
    ) -> None:
        headers, body = exception_response(status, description)
        await self.respond(conn, stream, record, status, headers, body)


def _cert_hosts(host: str) -> tuple[str, ...]:
    hosts = ["localhost", "127.0.0.1", "::1"]
    if host not in hosts and host not in ("0.0.0.0", "::"):
        hosts.append(host)
    return tuple(hosts)


def now_wall() -> datetime.datetime:
    return datetime.datetime.now().astimezone()
