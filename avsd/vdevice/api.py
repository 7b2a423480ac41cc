"""The Virtual Device HTTP API (Bespoken's): ``/process``, ``/batch_process``, ``/conversation``,
``/conversation_stop``, plus ``/health`` and the audio URLs it hands out.

Quirks of the real clients that this serves unchanged:
- virtual-device-sdk's ``message()`` URL-encodes the message and phrases, then ``encodeURI``s the whole URL, so
  they arrive encoded twice ("what%2520time"); a value that still holds ``%XX`` after the framework's decoding is
  decoded once more.
- ``/conversation`` and ``/conversation_stop`` carry no ``user_id`` from the SDK: the conversation's uuid (122
  random bits) is the capability. A ``user_id`` that is given must still be the conversation's own.
- Bespoken answers some 400s with a bare string body and others with ``{"error": ...}``: each is kept as it is.
- Audio URLs are signed (HMAC of the id), so only what this server handed out can be fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from avsd.vdevice.audio_in import AudioDecodeError, decode_base64
from avsd.vdevice.fetch import AudioFetcher, FetchError
from avsd.vdevice.homophones import Homophones, homophone_rules, merge_rules
from avsd.vdevice.processor import Message, MessageError, MessageProcessor, Options, new_id
from avsd.vdevice.store import ConversationStore, Status
from avsd.vdevice.tokens import TokenBook, TokenEntry

_log = logging.getLogger(__name__)

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_TRUE = frozenset({"true", "1", "yes"})
# Speech-to-text choices a client may name. Bespoken's cloud offers google and witai; here both mean "the
# configured engine" (pocketsphinx, or a Wyoming ASR server), so a suite written for Bespoken runs unchanged.
STT_CHOICES = frozenset({"google", "witai", "pocketsphinx", "wyoming", "default"})
STT_ERROR = "stt is invalid, it could be google or witai"


class AudioLinks:
    """The processor's AudioUrls: keep the bytes in the store, hand out a URL signed with a per-server key."""

    def __init__(self, store: ConversationStore, public_url: str, key: bytes | None = None) -> None:
        self._store = store
        self.public_url = public_url.rstrip("/")
        self._key = key or secrets.token_bytes(32)

    async def publish(self, content_type: str, data: bytes) -> str:
        audio_id = new_id()
        await self._store.put_audio(audio_id, content_type, data)
        return f"{self.public_url}/audio/{audio_id}?sig={self._sign(audio_id)}"

    def valid(self, audio_id: str, signature: str) -> bool:
        return hmac.compare_digest(signature.encode(), self._sign(audio_id).encode())

    def _sign(self, audio_id: str) -> str:
        return hmac.new(self._key, audio_id.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ApiSettings:
    max_body_bytes: int = 16 * 1024 * 1024
    max_messages: int = 100
    max_audio_bytes: int = 8 * 1024 * 1024  # decoded request audio
    homophones: Homophones = ()  # applied to every transcript, before per-token and per-request rules
    token_homophones: Mapping[str, Homophones] | None = None  # by identity
    # With several worker processes (avsd/vdevice/workers.py): only one resumes unfinished conversations after a
    # restart, and each names itself in an X-Avsd-Worker header (which process answered, for operators and tests).
    resume_unfinished: bool = True
    worker_name: str = ""


class VirtualDeviceApi:
    def __init__(
        self,
        processor: MessageProcessor,
        tokens: TokenBook,
        store: ConversationStore,
        fetcher: AudioFetcher,
        settings: ApiSettings,
        links: AudioLinks,
    ) -> None:
        self._processor = processor
        self._tokens = tokens
        self._store = store
        self._fetcher = fetcher
        self._settings = settings
        self._links = links
        self._jobs: dict[str, asyncio.Task[None]] = {}

    # -- the application ------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self._settings.max_body_bytes, middlewares=[_errors_middleware])
        app.router.add_get("/health", self._health)
        app.router.add_get("/process", self._process)
        app.router.add_post("/batch_process", self._batch)
        app.router.add_get("/conversation", self._conversation)
        app.router.add_post("/conversation_stop", self._conversation_stop)
        app.router.add_get("/audio/{audio_id}", self._audio)
        app.router.add_post("/reporting/testResults", self._reporting_sink)
        if self._settings.resume_unfinished:
            app.on_startup.append(self._resume)
        if self._settings.worker_name:
            app.on_response_prepare.append(self._name_worker)
        app.on_cleanup.append(self._stop_jobs)
        return app

    # -- routes ---------------------------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _name_worker(self, _request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Avsd-Worker"] = self._settings.worker_name

    async def _reporting_sink(self, request: web.Request) -> web.Response:
        """bst posts every run's results to Bespoken's dashboard (BESPOKEN_API_BASE_URL) and exits 1 when that
        fails, as it always does offline. Point BESPOKEN_API_BASE_URL here: the report is read and dropped (no
        state, no effect: like /health it needs no token)."""
        await request.read()
        return web.Response(status=204)

    async def _process(self, request: web.Request) -> web.Response:
        query = request.query
        entry = self._authorize(query)
        options = self._options(query, entry)
        text = _sdk_decoded(query.get("message", ""))
        if not text:
            raise MessageError(400, "message is required")
        phrases = [_sdk_decoded(p) for p in query.getall("phrases", [])]
        if query.get("new_conversation", "").lower() in _TRUE:
            await self._processor.new_conversation(entry.identity)
        result = await self._processor.process(entry.identity, Message(text=text, phrases=phrases), options)
        return web.json_response(result)

    async def _batch(self, request: web.Request) -> web.Response:
        query = request.query
        entry = self._authorize(query)
        options = self._options(query, entry)
        try:
            body = await request.json(loads=json.loads)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MessageError(400, "Invalid message") from exc
        raw_messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(raw_messages, list) or not raw_messages:
            raise MessageError(400, "message is required")
        if len(raw_messages) > self._settings.max_messages:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self._settings.max_messages, actual_size=len(raw_messages), text="too many messages"
            )
        for raw in raw_messages:  # refuse a bad batch whole, before anything is said
            _check_message_shape(raw)
        if query.get("async_mode", "").lower() in _TRUE:
            conversation = str(uuidlib.uuid4())
            await self._store.create(conversation, entry.token, raw_messages)
            self._start_job(conversation, entry, raw_messages, options, start=0)
            return web.json_response({"conversation_id": conversation})
        results = []
        for raw in raw_messages:
            message = await self._message(raw)
            results.append(await self._processor.process(entry.identity, message, options))
        return web.json_response({"results": results, "status": Status.COMPLETED.value})

    async def _conversation(self, request: web.Request) -> web.Response:
        conversation_id = request.query.get("uuid", "")
        if not conversation_id:
            raise MessageError(400, {"error": "Required parameter uuid is missing"})
        conversation = await self._store.get(conversation_id)
        if conversation is None or not self._may_see(request.query, conversation.token):
            raise MessageError(404, {"error": "The uuid provided doesn't match a process"})
        body: dict[str, Any] = {"status": conversation.status.value, "results": conversation.results}
        if conversation.status is Status.ERROR:
            body.update({"error": conversation.error, "error_category": conversation.error_category})
        return web.json_response(body)

    async def _conversation_stop(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MessageError(400, {"error": "Required parameter uuid is missing"}) from exc
        conversation_id = body.get("uuid") if isinstance(body, dict) else None
        if not isinstance(conversation_id, str) or not conversation_id:
            raise MessageError(400, {"error": "Required parameter uuid is missing"})
        conversation = await self._store.get(conversation_id)
        if conversation is None or not self._may_see(request.query, conversation.token):
            raise MessageError(404, {"error": "The uuid provided doesn't match a process"})
        job = self._jobs.pop(conversation_id, None)
        if job is not None:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        if conversation.status is Status.IN_PROGRESS:
            await self._store.finish(conversation_id, Status.ERROR, "stopped by the client", "user")
        return web.Response(text="")

    async def _audio(self, request: web.Request) -> web.Response:
        audio_id = request.match_info["audio_id"]
        if not self._links.valid(audio_id, request.query.get("sig", "")):
            raise web.HTTPForbidden(text="bad signature")
        found = await self._store.get_audio(audio_id)
        if found is None:
            raise web.HTTPNotFound(text="no such audio")
        content_type, data = found
        return web.Response(body=data, content_type=content_type)

    # -- helpers --------------------------------------------------------------------------------------------
    def _authorize(self, query: Mapping[str, str]) -> TokenEntry:
        token = query.get("user_id", "")
        if not token:
            raise MessageError(400, "user_id is required")
        entry = self._tokens.lookup(token)
        if entry is None:
            _log.warning("refused a request with an unknown user_id")
            raise MessageError(400, "Invalid user_id")
        return entry

    def _may_see(self, query: Mapping[str, str], owner: str) -> bool:
        token = query.get("user_id")
        return token is None or hmac.compare_digest(token.encode(), owner.encode())

    def _options(self, query: Mapping[str, str], entry: TokenEntry) -> Options:
        stt = query.get("stt")
        if stt is not None and stt.lower() not in STT_CHOICES:
            raise MessageError(400, {"error": STT_ERROR})
        per_request = homophone_rules(_homophones_param(query.get("homophones", "")))
        per_token = (self._settings.token_homophones or {}).get(entry.identity, ())
        return Options(
            voice_id=query.get("voice_id") or None,
            skip_stt=query.get("skip_stt", "").lower() in _TRUE,
            debug=query.get("debug", "").lower() in _TRUE,
            homophones=merge_rules(self._settings.homophones, per_token, per_request),
        )

    async def _message(self, raw: Mapping[str, Any]) -> Message:
        audio = b""
        encoded = raw.get("audio") or raw.get("audio_data")
        url = raw.get("url") or raw.get("audio_url")
        if encoded:
            try:
                audio = decode_base64(str(encoded))
            except AudioDecodeError as exc:
                raise MessageError(400, {"error": "Invalid encoded audio in message"}) from exc
        elif url:
            try:
                audio = await self._fetcher.fetch(str(url))
            except FetchError as exc:
                _log.warning("audio_url refused: %s", exc)
                raise MessageError(400, {"error": "Error processing audio"}) from exc
        if len(audio) > self._settings.max_audio_bytes:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self._settings.max_audio_bytes, actual_size=len(audio), text="audio too large"
            )
        fmt = str(raw.get("format") or (_extension(str(url)) if url else "raw"))
        return Message(
            text=str(raw.get("text") or ""),
            audio=audio,
            format=fmt,
            frame_rate=int(raw.get("frame_rate") or 16000),
            channels=int(raw.get("channels") or 1),
            sample_width=int(raw.get("sample_width") or 2),
            phrases=[str(p) for p in raw.get("phrases") or []],
            settings=raw.get("settings") or {},
        )

    def _start_job(
        self, conversation: str, entry: TokenEntry, messages: list[Any], options: Options, *, start: int
    ) -> None:
        task = asyncio.create_task(self._run_job(conversation, entry, messages, options, start), name=conversation)
        self._jobs[conversation] = task
        task.add_done_callback(lambda _t: self._jobs.pop(conversation, None))

    async def _run_job(
        self, conversation: str, entry: TokenEntry, messages: list[Any], options: Options, start: int
    ) -> None:
        try:
            for index in range(start, len(messages)):
                if not await self._still_running(conversation):
                    return  # stopped through another worker process (a stop here cancels the task)
                message = await self._message(messages[index])
                result = await self._processor.process(entry.identity, message, options)
                result["status"] = Status.IN_PROGRESS.value
                await self._store.add_result(conversation, index, result)
            await self._store.finish(conversation, Status.COMPLETED)
        except MessageError as exc:
            error = exc.body if isinstance(exc.body, str) else str(exc.body.get("error", exc.body))
            await self._store.finish(conversation, Status.ERROR, error, "user")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a job boundary: the conversation says ERROR, the server goes on
            _log.exception("conversation %s failed", conversation)
            await self._store.finish(conversation, Status.ERROR, f"{exc.__class__.__name__}: {exc}", "system")

    async def _still_running(self, conversation: str) -> bool:
        current = await self._store.get(conversation)
        return current is not None and current.status is Status.IN_PROGRESS

    async def _resume(self, _app: web.Application) -> None:
        """After a restart, finish every async conversation from its first message without a result."""
        for conversation in await self._store.unfinished():
            entry = self._tokens.lookup(conversation.token)
            if entry is None:
                await self._store.finish(conversation.uuid, Status.ERROR, "token no longer configured", "system")
                continue
            _log.info("resuming conversation %s at message %d", conversation.uuid, len(conversation.results))
            self._start_job(conversation.uuid, entry, conversation.messages, Options(), start=len(conversation.results))

    async def _stop_jobs(self, _app: web.Application) -> None:
        jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)


def _check_message_shape(raw: Any) -> None:
    if not isinstance(raw, dict):
        raise MessageError(400, "Invalid message")
    if not (raw.get("text") or raw.get("audio") or raw.get("audio_data") or raw.get("url") or raw.get("audio_url")):
        raise MessageError(400, "Invalid message")
    fmt = raw.get("format")
    if fmt is not None and str(fmt).lower() not in ("raw", "wav", "mp3", "ogg"):
        raise MessageError(400, {"error": "Invalid format in message"})
    for key in ("frame_rate", "channels", "sample_width"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise MessageError(400, {"error": "Error processing audio"})


def _sdk_decoded(value: str) -> str:
    return unquote(value) if _PERCENT.search(value) else value


def _homophones_param(value: str) -> dict[str, list[str]]:
    """``homophones`` query parameter: JSON ``{"word": ["h1", ...]}`` (an avsd extension); empty -> none."""
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise MessageError(400, {"error": "homophones must be a JSON object of lists"}) from exc
    if not isinstance(parsed, dict) or not all(isinstance(v, list) for v in parsed.values()):
        raise MessageError(400, {"error": "homophones must be a JSON object of lists"})
    return {str(k): [str(h) for h in v] for k, v in parsed.items()}


def _extension(url: str) -> str:
    path = url.split("?", 1)[0]
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else "raw"
    return ext if ext in ("wav", "mp3", "ogg") else "raw"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except MessageError as exc:
        if isinstance(exc.body, str):
            return web.Response(status=exc.status, text=exc.body)
        return web.json_response(exc.body, status=exc.status)
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # one request's failure is that request's 500, nothing else
        _log.exception("%s %s failed", request.method, request.path)
        return web.json_response({"error": f"{exc.__class__.__name__}: {exc}"}, status=500)
