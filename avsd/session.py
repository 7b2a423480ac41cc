"""The headless session: one AVS device identity without a microphone or a speaker (architecture.md).

One :class:`~avsd.avs.client.AvsClient` connection (downchannel, SynchronizeState, ping, reconnect), the
directive sequencer with the agents a headless device needs (System, SpeechRecognizer's StopCapture), and
:meth:`HeadlessSession.ask`: audio (or text through TTS) in, a :class:`Reply` out.

Where the appliance *plays* a reply, the session *captures* it: every directive of an ask's ``dialogRequestId``
(from the event's own answer and from the downchannel) goes into that ask's :class:`Reply`, with the Speak/Play
audio as received (MP3 bytes). Those directives are routed here rather than through the sequencer on purpose:
the sequencer keeps ONE current dialog and scrubs the previous one (right for a device with one speaker), while
a session may have many asks in flight on one connection (``avsd ask --concurrency``), each with its own dialog.
Directives without a dialogRequestId (SetEndpoint, StopCapture, ...) go through the sequencer to the agents.

Limits respected: every ask is one event stream on the one HTTP/2 connection; the client allows at most 8
event streams (AVS allows 10: 8 + downchannel + ping) and one event awaiting response headers at a time (§1.3).

:func:`avsd.root.build_headless_session` wires it (the composition root picks the concrete classes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from avsd.agents.events import EventQueue
from avsd.agents.sequencer import DirectiveSequencer
from avsd.agents.system import SystemAgent
from avsd.avs.attachments import AttachmentStore, content_id_from_url
from avsd.avs.auth import TokenProvider
from avsd.avs.client import AvsClient, ConnectionState
from avsd.avs.http import HttpClient
from avsd.avs.messages import Directive, Event, context_entry
from avsd.errors import AuthError, AuthUnavailableError, AvsConnectionError, NotConnectedError
from avsd.reply import AudioFormat, DistanceProfile, Reply, ReplyDirective, play_url
from avsd.session_audio import AudioInput, audio_chunks

_LOGGER = logging.getLogger(__name__)


class AnonymousTokens(TokenProvider):
    """No credentials: a fixed bearer token for a local server that accepts any token (tests, no account)."""

    def __init__(self) -> None:  # no LWA: nothing of TokenProvider's state is used
        self.refresh_count = 0

    async def get_token(self) -> str:
        return "avsd-anonymous"

    def invalidate(self, rejected: str) -> None:
        return None


@dataclass(slots=True, eq=False)
class _Ask:
    dialog_request_id: str
    profile: DistanceProfile
    directives: list[Directive] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class HeadlessSession:
    """Built by :func:`build_session`. ``async with`` or ``connect()`` / ``close()``."""

    def __init__(
        self,
        *,
        client: AvsClient,
        sequencer: DirectiveSequencer,
        events: EventQueue,
        system: SystemAgent,
        attachments: AttachmentStore,
        tokens: TokenProvider,
        lwa_http: HttpClient | None,
        ask_timeout_s: float,
    ) -> None:
        self.client = client
        self.sequencer = sequencer
        self.events = events
        self.system = system
        self.attachments = attachments
        self.tokens = tokens
        self._lwa_http = lwa_http
        self.ask_timeout_s = ask_timeout_s
        self.directive_observers: list[Callable[[ReplyDirective], None]] = []
        self._asks: dict[str, _Ask] = {}  # open asks by dialogRequestId
        self._expecting: dict[str, Mapping[str, Any]] = {}  # ExpectSpeech initiator by dialogRequestId
        self._expect_timers: dict[str, asyncio.TimerHandle] = {}
        self._expect_deferred: dict[str, Any] = {}  # ExpectSpeech timeouts waiting for listening() (expect_timer)
        self._tasks: list[asyncio.Task[None]] = []  # sequencer, event queue
        self._client_task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._settled = asyncio.Event()  # connected or refused

    # ----- directives ---------------------------------------------------------------------------------------

    def route(self, directive: Directive) -> None:
        """The client's directive sink: an open ask's directives go to its reply, the rest to the agents."""
        ask = self._asks.get(directive.dialog_request_id or "")
        if ask is not None:
            ask.directives.append(directive)
        else:
            self.sequencer.submit(directive)

    def stop_capture(self) -> None:
        """StopCapture (no dialogRequestId, §3.2): end the oldest cloud-endpointed upload still running."""
        for ask in self._asks.values():
            if ask.profile is not DistanceProfile.CLOSE_TALK and not ask.stop.is_set():
                ask.stop.set()
                return

    def expect_speech(self, timeout_s: float, initiator: Mapping[str, Any] | None) -> bool:
        return True  # an ExpectSpeech of an ask is in its Reply; one without an open ask has nobody to ask

    # ----- lifecycle ----------------------------------------------------------------------------------------

    async def __aenter__(self) -> HeadlessSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self.client.state is ConnectionState.CONNECTED

    async def connect(self, timeout: float | None = None) -> None:
        """Get a token (AuthError with LWA's reason), open the connection, SynchronizeState. Idempotent."""
        if self._closed.is_set():
            raise NotConnectedError("the session is closed")
        if self.connected:
            return
        timeout = timeout if timeout is not None else self.client.settings.connect_timeout_s + 5.0
        try:
            async with asyncio.timeout(timeout):
                await self.tokens.get_token()  # a refused grant surfaces here with LWA's reason
        except TimeoutError:
            raise AvsConnectionError("Login with Amazon did not answer in time") from None
        except AuthUnavailableError as exc:  # unreachable or 5xx: a connection problem, not refused credentials
            raise AvsConnectionError(f"could not reach Login with Amazon: {exc}") from exc
        if not self._tasks:
            self.client.add_state_observer(self._on_state)
            for name, coro in (("directives", self.sequencer.run()), ("events", self.events.run())):
                self._tasks.append(asyncio.create_task(coro, name=f"session-{name}"))
        if self._client_task is None:
            self._client_task = asyncio.create_task(self.client.run(), name="session-avs-client")
        try:
            async with asyncio.timeout(timeout):
                while not self.connected:
                    self._settled.clear()
                    if self.client.state is ConnectionState.AUTH_FAILED:
                        raise AuthError("refused", self.client.last_error)
                    await self._settled.wait()
        except BaseException as exc:
            # A failed connect leaves nothing retrying in the background; connect() may be called again.
            await self._stop_client()
            if isinstance(exc, TimeoutError):
                detail = self.client.last_error or "no answer"
                raise AvsConnectionError(f"could not connect to {self.client.base_url}: {detail}") from None
            raise

    async def _stop_client(self) -> None:
        task, self._client_task = self._client_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _on_state(self, state: ConnectionState) -> None:
        if state in (ConnectionState.CONNECTED, ConnectionState.AUTH_FAILED, ConnectionState.WAITING_TO_RETRY):
            self._settled.set()

    async def close(self) -> None:
        """Cancel what is in flight (it raises AvsConnectionError), close the connection. Idempotent."""
        self._closed.set()
        for ask in self._asks.values():
            ask.stop.set()
        for timer in self._expect_timers.values():
            timer.cancel()
        await self._stop_client()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.sequencer.close()
        if self._lwa_http is not None:
            await self._lwa_http.aclose()

    async def ping(self) -> None:
        """``GET /ping`` now (the client also pings by itself after 5 idle minutes)."""
        await self.client.ping()

    # ----- asking -------------------------------------------------------------------------------------------

    async def ask(
        self,
        audio: AudioInput,
        *,
        dialog_request_id: str | None = None,
        profile: DistanceProfile | str = DistanceProfile.CLOSE_TALK,
        audio_format: AudioFormat | str = AudioFormat.PCM,
        timeout: float | None = None,
        expect_timer: bool = True,
    ) -> Reply:
        """Send one Recognize with ``audio`` (16 kHz mono S16LE PCM or a WAV of it: bytes, a file-like object
        that may keep growing until it is closed, or an async iterable of chunks) and return the reply.

        Continue a dialog by passing the ``dialog_request_id`` of a reply that expects speech: the Recognize then
        echoes the ExpectSpeech initiator (§6.1). An unanswered ExpectSpeech times out (``ExpectSpeechTimedOut``)
        counted from the reply; ``expect_timer=False`` counts from :meth:`listening` instead, for a front-end that
        plays the reply itself and opens its microphone once it has played (the phone bridge), until
        :meth:`answering`. Raises AvsServerError (4xx/5xx), AvsConnectionError (timeout, connection lost, session
        closed), NotConnectedError.
        """
        if self._closed.is_set():
            raise NotConnectedError("the session is closed")
        profile, audio_format = DistanceProfile(profile), AudioFormat(audio_format)
        drid = dialog_request_id or str(uuid.uuid4())
        if drid in self._asks:
            raise ValueError(f"dialog request {drid} already has an ask in flight")
        timer = self._expect_timers.pop(drid, None)
        if timer is not None:
            timer.cancel()
        self._expect_deferred.pop(drid, None)
        event = recognize_event(drid, profile, audio_format, self._expecting.pop(drid, None))
        ask = _Ask(drid, profile)
        self._asks[drid] = ask
        sent = [0]
        chunks = _stoppable(audio_chunks(audio, audio_format, sent), ask.stop, self._closed)
        started = time.monotonic()
        limit = timeout or self.ask_timeout_s
        try:
            # Our own deadline: while the downchannel task holds httpcore's read lock (its read has no timeout),
            # an event waiting for its headers never reaches its own read timeout.
            async with asyncio.timeout(limit):
                result = await self.client.send_event(event, chunks)
        except TimeoutError:
            raise AvsConnectionError(f"Recognize: timed out ({limit:g} s without an answer)") from None
        finally:
            del self._asks[drid]
        if self._closed.is_set():
            raise AvsConnectionError("the session was closed while the ask was in flight")
        return await self._reply(drid, result.status, ask.directives, started, sent[0], expect_timer)

    async def _reply(
        self, drid: str, status: int, directives: list[Directive], started: float, sent: int, expect_timer: bool
    ) -> Reply:
        out: list[ReplyDirective] = []
        expect: Mapping[str, Any] | None = None
        first_audio: float | None = None
        for d in directives:
            audio: bytes | None = None
            url = d.payload.get("url") if d.name == "Speak" else play_url(d.payload) if d.name == "Play" else None
            cid = content_id_from_url(url) if isinstance(url, str) else None
            if cid:
                attachment = self.attachments.get(cid)
                audio = await attachment.read_all()
                if attachment.first_byte_at is not None:
                    at = attachment.first_byte_at - started
                    first_audio = at if first_audio is None else min(first_audio, at)
            if d.namespace == "SpeechRecognizer" and d.name == "ExpectSpeech":
                expect = d.payload
                initiator = d.payload.get("initiator")
                self._expecting[drid] = initiator if isinstance(initiator, Mapping) else {}
                if expect_timer:
                    self._expect_later(drid, d.payload.get("timeoutInMilliseconds"))
                else:
                    self._expect_deferred[drid] = d.payload.get("timeoutInMilliseconds")
            reply_directive = ReplyDirective(
                d.namespace, d.name, d.payload, d.dialog_request_id, d.message_id, audio
            )
            for observer in list(self.directive_observers):
                observer(reply_directive)
            out.append(reply_directive)
        return Reply(drid, status, tuple(out), expect, first_audio, sent)

    def listening(self, dialog_request_id: str) -> None:
        """The reply of ``dialog_request_id`` (asked with ``expect_timer=False``) has played: its ExpectSpeech
        timeout starts now. Nothing happens when that reply expected no speech or was answered already."""
        timeout_ms = self._expect_deferred.pop(dialog_request_id, None)
        if dialog_request_id in self._expecting and not self._closed.is_set():
            self._expect_later(dialog_request_id, timeout_ms)

    def answering(self, dialog_request_id: str) -> None:
        """Speech answering ``dialog_request_id``'s ExpectSpeech has started (a device's microphone has opened):
        its timeout stops, and the ask that sends that speech echoes the ExpectSpeech initiator."""
        self._expect_deferred.pop(dialog_request_id, None)
        timer = self._expect_timers.pop(dialog_request_id, None)
        if timer is not None:
            timer.cancel()

    def end_dialog(self, dialog_request_id: str) -> None:
        """Forget ``dialog_request_id``'s unanswered ExpectSpeech without a word to AVS (the one who would have
        answered is gone, e.g. a caller hung up); a later ask with that id starts afresh."""
        self._expecting.pop(dialog_request_id, None)
        self._expect_deferred.pop(dialog_request_id, None)
        timer = self._expect_timers.pop(dialog_request_id, None)
        if timer is not None:
            timer.cancel()

    def _expect_later(self, drid: str, timeout_ms: Any) -> None:
        """Nobody answered the ExpectSpeech in time: ``ExpectSpeechTimedOut`` (§6.1), as a device would."""
        if not isinstance(timeout_ms, int | float) or isinstance(timeout_ms, bool) or timeout_ms <= 0:
            return

        def timed_out() -> None:
            self._expect_timers.pop(drid, None)
            if self._expecting.pop(drid, None) is not None and not self._closed.is_set():
                self.events.send(Event.new("SpeechRecognizer", "ExpectSpeechTimedOut"))

        self._expect_timers[drid] = asyncio.get_running_loop().call_later(timeout_ms / 1000.0, timed_out)


def recognize_event(
    drid: str, profile: DistanceProfile, audio_format: AudioFormat, expect_initiator: Mapping[str, Any] | None
) -> Event:
    """``SpeechRecognizer.Recognize`` for a headless ask (§6.1): an answer to ExpectSpeech echoes its initiator
    verbatim; otherwise the caller ends CLOSE_TALK audio (PRESS_AND_HOLD) and the cloud ends the others (TAP)."""
    payload: dict[str, Any] = {"profile": str(profile), "format": str(audio_format)}
    if expect_initiator is not None:
        if expect_initiator:
            payload["initiator"] = dict(expect_initiator)
    else:
        kind = "PRESS_AND_HOLD" if profile is DistanceProfile.CLOSE_TALK else "TAP"
        payload["initiator"] = {"type": kind, "payload": {}}
    return Event.new("SpeechRecognizer", "Recognize", payload, dialog_request_id=drid)


async def _stoppable(chunks: AsyncIterator[bytes], stop: asyncio.Event, closed: asyncio.Event) -> AsyncIterator[bytes]:
    """End the upload (never cancel it: httpcore would leave the stream open) on StopCapture or close()."""
    try:
        async for chunk in chunks:
            if stop.is_set() or closed.is_set():
                return
            yield chunk
    finally:
        with contextlib.suppress(Exception):
            await chunks.aclose()  # type: ignore[attr-defined]


def headless_context() -> list[Callable[[], Mapping[str, Any]]]:
    """The context a headless device reports (§5.2): nothing playing, nothing speaking."""
    return [
        lambda: context_entry("SpeechRecognizer", "RecognizerState", {"wakeword": "ALEXA"}),
        lambda: context_entry(
            "SpeechSynthesizer", "SpeechState", {"token": "", "offsetInMilliseconds": 0, "playerActivity": "FINISHED"}
        ),
        lambda: context_entry(
            "AudioPlayer", "PlaybackState", {"token": "", "offsetInMilliseconds": 0, "playerActivity": "IDLE"}
        ),
    ]


__all__ = [
    "AnonymousTokens",
    "AudioFormat",
    "DistanceProfile",
    "HeadlessSession",
    "Reply",
    "ReplyDirective",
    "headless_context",
    "recognize_event",
]
