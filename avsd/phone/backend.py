"""What answers a caller: ``CallBackend.open_call(caller) -> CallSession``; ``CallSession.ask(pcm16k) -> Reply``.

A call is a headless session: every utterance is one ``SpeechRecognizer.Recognize`` (TAP initiator, or the
ExpectSpeech initiator when the last reply expected speech) with the call's own dialog request ids; the Speak
directives of the answer come back as MP3. :class:`AvsBackend` does this over :class:`AvsClient` connections: one
shared by all calls for Amazon (one connection per device), one per call for the emulator. Directives that do not
belong to a dialog (alerts, notifications pushed on the downchannel) reach no call and no speaker: an alert a
caller sets is never rung on the Pi.

Written against the protocol the library issue's ``avsd/session.py`` offers (ask(audio) -> Reply with speech,
expects_speech, directives), so a session-backed adapter can replace this one without touching the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from avsd.audio.frames import FRAME_BYTES
from avsd.avs.attachments import AttachmentStore, content_id_from_url
from avsd.avs.auth import TokenProvider
from avsd.avs.client import AvsClient, ConnectionSettings, make_ssl_context
from avsd.avs.context import ContextRegistry
from avsd.avs.http import HttpClient
from avsd.avs.messages import Directive, context_entry
from avsd.dialog import Initiator, recognize_event
from avsd.errors import AvsdError

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    speech: tuple[bytes, ...] = ()  # encoded audio (MP3) of each Speak, in order
    expects_speech: bool = False
    directives: tuple[str, ...] = ()  # qualified names, for logs and the host program


class CallSession(Protocol):
    async def ask(self, pcm16k: bytes) -> Reply: ...

    async def aclose(self) -> None: ...


class CallBackend(Protocol):
    async def open_call(self, caller: str) -> CallSession: ...

    async def aclose(self) -> None: ...


class AvsConnection:
    """One AvsClient connection (downchannel, events) and the task that runs it."""

    def __init__(self, backend: AvsBackend) -> None:
        self.attachments = AttachmentStore()
        self.client = AvsClient(
            backend.settings,
            backend.tokens,
            context=backend.context,
            on_directive=_not_for_a_call,
            attachments=self.attachments,
            ssl_context=backend.ssl_context,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout_s: float) -> AvsConnection:
        self._task = asyncio.create_task(self.client.run(), name="phone-avs-client")
        try:
            await self.client.wait_connected(timeout_s)
        except TimeoutError as exc:
            await self.aclose()
            raise AvsdError(f"the phone back-end could not connect to {self.client.base_url}") from exc
        return self

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _not_for_a_call(directive: Directive) -> None:
    # Answers to a call's Recognize are read from send_event's result; anything else (downchannel pushes such as
    # SetAlert for an alert a caller asked for) belongs to no call and is deliberately not acted on.
    if directive.dialog_request_id is None:
        _LOGGER.info("phone back-end: %s not tied to a call, not acted on", directive.qualified_name)


class AvsBackend:
    """Calls answered by AVS or the emulator. Use as an async context manager.

    ``per_call``: each call gets its own connection (the emulator: calls' Recognizes run in parallel, because one
    connection lets only one event wait for its response headers at a time, and an answer comes only once the
    upload is complete). Otherwise all calls share one connection (Amazon allows one per device).
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        token_url: str,
        credentials_path: Path,
        per_call: bool = False,
        connect_timeout_s: float = 15.0,
        answer_timeout_s: float = 20.0,
    ) -> None:
        self.settings = settings
        self.ssl_context = make_ssl_context(settings.ca_file)
        self._http = HttpClient(ssl_context=self.ssl_context, timeout=60.0)
        self.tokens = TokenProvider(token_url=token_url, credentials_path=credentials_path, http=self._http)
        self.context = ContextRegistry()
        self.context.register(lambda: context_entry("SpeechRecognizer", "RecognizerState", {"wakeword": "ALEXA"}))
        self.per_call = per_call
        self._connect_timeout_s = connect_timeout_s
        self.answer_timeout_s = answer_timeout_s
        self._shared: AvsConnection | None = None

    async def __aenter__(self) -> AvsBackend:
        if not self.per_call:
            try:
                self._shared = await AvsConnection(self).start(self._connect_timeout_s)
            except BaseException:
                await self._http.aclose()
                raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.aclose()
            self._shared = None
        await self._http.aclose()

    async def open_call(self, caller: str) -> AvsCallSession:
        if self._shared is not None:
            return AvsCallSession(self._shared, self.answer_timeout_s, owned=False)
        connection = await AvsConnection(self).start(self._connect_timeout_s)
        return AvsCallSession(connection, self.answer_timeout_s, owned=True)


UPLOAD_CHUNK = 10 * FRAME_BYTES  # 100 ms per write: the utterance is complete, no need to trickle it


async def _frames(pcm: bytes) -> AsyncIterator[bytes]:
    for offset in range(0, len(pcm), UPLOAD_CHUNK):
        yield pcm[offset : offset + UPLOAD_CHUNK]


class AvsCallSession:
    """One caller's dialog: its own dialog request ids, and the ExpectSpeech initiator carried to the next turn."""

    def __init__(self, connection: AvsConnection, answer_timeout_s: float, *, owned: bool) -> None:
        self._connection = connection
        self._answer_timeout_s = answer_timeout_s
        self._owned = owned
        self._expect_initiator: dict[str, Any] | None = None
        self.dialog_request_ids: list[str] = []

    async def ask(self, pcm16k: bytes) -> Reply:
        dialog_request_id = str(uuid.uuid4())
        self.dialog_request_ids.append(dialog_request_id)
        if self._expect_initiator is not None:
            event = recognize_event(
                dialog_request_id=dialog_request_id,
                initiator=Initiator.EXPECT_SPEECH,
                profile="NEAR_FIELD",
                expect_initiator=self._expect_initiator,
            )
        else:
            event = recognize_event(dialog_request_id=dialog_request_id, initiator=Initiator.TAP, profile="NEAR_FIELD")
        self._expect_initiator = None
        async with asyncio.timeout(self._answer_timeout_s):
            result = await self._connection.client.send_event(event, _frames(pcm16k))
            speech: list[bytes] = []
            expects = False
            for directive in result.directives:
                if directive.dialog_request_id not in (None, dialog_request_id):
                    continue
                if directive.qualified_name == "SpeechSynthesizer.Speak":
                    content_id = content_id_from_url(str(directive.payload.get("url", "")))
                    if content_id is not None:
                        speech.append(await self._connection.attachments.get(content_id).read_all())
                elif directive.qualified_name == "SpeechRecognizer.ExpectSpeech":
                    expects = True
                    initiator = directive.payload.get("initiator")
                    self._expect_initiator = dict(initiator) if isinstance(initiator, dict) else {}
        return Reply(tuple(speech), expects, tuple(d.qualified_name for d in result.directives))

    async def aclose(self) -> None:
        self._expect_initiator = None
        if self._owned:
            await self._connection.aclose()
