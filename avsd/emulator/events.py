"""``POST /v20160207/events``: incremental multipart upload, envelope check, cloud endpointing, the answer.

The body is parsed while it streams: the event's JSON part is validated (and recorded) as soon as it is
complete, audio is recorded chunk by chunk with its arrival time, and for a NEAR_FIELD/FAR_FIELD Recognize the
audio runs through webrtcvad + the endpointer so ``StopCapture`` can be pushed on the downchannel while the
device is still uploading (§3.2, §4.3). When the outcome is already known to be a plain 200, the response
headers go out early, as AVS does for Recognize (§11.2).

An OPUS Recognize (``"format": "OPUS"``) is split into its CBR packets (80 or 160 bytes, told apart from the
first packets) and decoded back to PCM as it streams: ``record.audio`` and the endpointer get the PCM,
``record.encoded_audio`` keeps the bytes as sent. Its early headers wait until the first packets have decoded, so a
stream that is not Opus is still answered 400 INVALID_REQUEST_EXCEPTION; a bad packet later resets the stream.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from avsd.audio.endpointer import EndpointResult
from avsd.audio.opus import OPUS_FORMAT, OpusStreamDecoder, OpusStreamError, OpusUnavailableError
from avsd.audio.vad import VadEndpointer
from avsd.avs.multipart import (
    BodyEnd,
    MultipartParser,
    PartData,
    PartEnd,
    PartStart,
    boundary_from_content_type,
    new_boundary,
)
from avsd.emulator.brains import Turn
from avsd.emulator.faults import Fault, FaultKind, FaultTarget
from avsd.emulator.h2conn import RequestStream, ServerConnection, StreamGoneError
from avsd.emulator.record import RecordedRequest
from avsd.emulator.replies import (
    directive_json,
    encode_response,
    qualified_name,
    response_content_type,
    validate_event,
)
from avsd.emulator.scenario import DirectiveSpec, Rule, render_payload
from avsd.errors import MultipartError

if TYPE_CHECKING:
    from avsd.emulator.server import Emulator

_log = logging.getLogger(__name__)

RECOGNIZE = "SpeechRecognizer.Recognize"
_CLOUD_ENDPOINTING_PROFILES = {"NEAR_FIELD", "FAR_FIELD"}
_MAX_JSON_PART = 1024 * 1024
_BYTES_PER_SECOND = 32000  # 16 kHz, 16-bit, mono (§4.3)
_BRAIN_TIMEOUT_S = 30.0  # a brain that hangs (a stuck recogniser or bot) must not hold the stream forever
_BODY_FAULTS = frozenset({FaultKind.TRICKLE, FaultKind.MALFORMED_JSON, FaultKind.MALFORMED_MULTIPART})
# Faults after which the normal headers cannot be sent early.
_LATE_HEADER_FAULTS = frozenset({FaultKind.STATUS, FaultKind.RST_STREAM, FaultKind.STALL})


class _BadRequestError(Exception):
    """The upload is not a valid AVS event: answer 400 INVALID_REQUEST_EXCEPTION."""


@dataclass(slots=True)
class _Plan:
    """How this event will be answered (decided once its JSON part is known)."""

    status: int
    rule: Rule | None
    fault: Fault | None
    headers_sent: bool = False
    boundary: str = ""


class _Upload:
    """Per-request parse state."""

    def __init__(self) -> None:
        self.mode: str | None = None  # "json", "audio" or None (ignored part)
        self.json = bytearray()
        self.event: dict[str, Any] | None = None
        self.plan: _Plan | None = None
        self.endpointer: VadEndpointer | None = None
        self.stop_after_s: float | None = None
        self.stop_sent = False
        self.decoder: OpusStreamDecoder | None = None  # an OPUS upload
        self.early_headers_pending = False  # OPUS: send them once the first packets decode
        self.turn: Turn | None = None  # the brain's ear on a Recognize no scenario rule answers


class EventHandler:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    async def handle(self, conn: ServerConnection, stream: RequestStream, record: RecordedRequest) -> None:
        up = _Upload()
        try:
            await self._handle(conn, stream, record, up)
        finally:
            if up.turn is not None:
                # A rejected or abandoned upload still ends its turn, so the brain frees what it holds (a
                # recogniser). Answering twice is harmless: a turn's answer is computed once.
                up.turn.end_of_speech()

    async def _handle(
        self, conn: ServerConnection, stream: RequestStream, record: RecordedRequest, up: _Upload
    ) -> None:
        try:
            boundary = boundary_from_content_type(stream.headers.get("content-type", ""))
            parser = MultipartParser(boundary)
            while (item := await stream.read()) is not None:
                now, data = item
                for part_event in parser.feed(data):
                    await self._on_part(conn, record, up, now, part_event)
            parser.finish()
            if up.event is None:
                raise _BadRequestError("no JSON event part (name 'metadata')")
        except (MultipartError, _BadRequestError) as exc:
            record.body_complete.set()
            stream.abandon()
            _log.info("connection %d stream %d: 400 %s", conn.id, stream.stream_id, exc)
            if up.plan is not None and up.plan.headers_sent:
                # Early 200 already out: nothing honest left to say but to reset the stream.
                await conn.reset_stream(stream.stream_id)
                return
            await self.emu.respond_exception(conn, stream, record, 400, f"The request was malformed: {exc}")
            return
        record.body_complete.set()
        assert up.plan is not None  # set together with up.event
        await self._answer(conn, stream, record, up.event, up.plan, up.turn)

    # ------------------------------------------------------------------------------------------ upload

    async def _on_part(
        self, conn: ServerConnection, record: RecordedRequest, up: _Upload, now: float, ev: object
    ) -> None:
        if isinstance(ev, PartStart):
            name, ctype = ev.headers.name, ev.headers.content_type
            if up.event is None and (name in ("metadata", "request") or (name is None and "json" in ctype)):
                # alexa_client names the JSON part "request" (§4.2); tolerate it.
                up.mode = "json"
                up.json.clear()
            elif up.event is not None and (
                name == "audio" or (name is None and ctype == "application/octet-stream")
            ):
                up.mode = "audio"
            else:
                up.mode = None  # e.g. wakewordEngineMetadata: read and ignore
        elif isinstance(ev, PartData):
            if up.mode == "json":
                up.json += ev.data
                if len(up.json) > _MAX_JSON_PART:
                    raise _BadRequestError("JSON part too large")
            elif up.mode == "audio" and up.decoder is not None:
                await self._on_opus(conn, record, up, now, ev.data, end=False)
            elif up.mode == "audio":
                record.add_audio(now, ev.data)
                await self._endpoint(conn, up, ev.data, len(record.audio))
        elif isinstance(ev, PartEnd):
            if up.mode == "json":
                await self._on_event_json(conn, record, up)
            elif up.mode == "audio" and up.decoder is not None:
                await self._on_opus(conn, record, up, now, b"", end=True)
            up.mode = None
        elif isinstance(ev, BodyEnd):
            up.mode = None

    async def _on_event_json(self, conn: ServerConnection, record: RecordedRequest, up: _Upload) -> None:
        try:
            doc = json.loads(up.json)
        except ValueError as exc:
            raise _BadRequestError(f"event JSON does not parse: {exc}") from exc
        problem = validate_event(doc)
        if problem is not None:
            raise _BadRequestError(problem)
        up.event = doc
        name = qualified_name(doc)
        record.event, record.qualified_name = doc, name
        self.emu.notify()
        _log.info("connection %d: event %s", conn.id, name)
        rule = self.emu.rules.take(name)
        status = rule.response_status() if rule is not None else (200 if name == RECOGNIZE else 204)
        fault = rule.fault if rule is not None and rule.fault is not None else None
        if fault is None:
            # Nothing to trickle or break in a 204/error answer: such faults wait for an answer with a body.
            kinds = None if status == 200 else frozenset(FaultKind) - _BODY_FAULTS
            fault = self.emu.faults.take(FaultTarget.EVENT, name, kinds)
        up.plan = _Plan(status, rule, fault)
        if fault is not None:
            record.fault = str(fault.kind)
        if name == RECOGNIZE:
            if rule is None:
                up.turn = self._start_turn(doc)
            profile = str(doc["event"].get("payload", {}).get("profile", ""))
            if profile in _CLOUD_ENDPOINTING_PROFILES and self.emu.stop_capture:
                if rule is not None and rule.stop_capture_after_s is not None:
                    up.stop_after_s = rule.stop_capture_after_s
                else:
                    up.endpointer = VadEndpointer(self.emu.endpointer_settings)
            early = (
                status == 200
                and (rule is None or rule.delay_s == 0)
                and (fault is None or fault.kind not in _LATE_HEADER_FAULTS)
            )
            audio_format = doc["event"].get("payload", {}).get("format")
            record.audio_format = audio_format if isinstance(audio_format, str) else None
            if audio_format == OPUS_FORMAT:
                try:
                    up.decoder = OpusStreamDecoder()
                except OpusUnavailableError as exc:
                    raise _BadRequestError(f"this emulator cannot decode OPUS: {exc}") from exc
                up.early_headers_pending, early = early, False
            if early:
                await self._send_200_headers(conn, record.stream_id, up.plan)

    async def _on_opus(
        self, conn: ServerConnection, record: RecordedRequest, up: _Upload, now: float, data: bytes, *, end: bool
    ) -> None:
        assert up.decoder is not None and up.plan is not None
        try:
            pcm = up.decoder.finish() if end else up.decoder.feed(data)
        except OpusStreamError as exc:
            raise _BadRequestError(f"bad OPUS audio: {exc}") from exc
        record.add_encoded_audio(now, data, pcm)
        record.opus_packet_bytes = up.decoder.packet_bytes
        if up.early_headers_pending and up.decoder.packets:
            up.early_headers_pending = False
            await self._send_200_headers(conn, record.stream_id, up.plan)
        if pcm:
            await self._endpoint(conn, up, pcm, len(record.audio))

    async def _endpoint(self, conn: ServerConnection, up: _Upload, data: bytes, total: int) -> None:
        if up.turn is not None:
            up.turn.feed(data)
        if up.stop_sent:
            return
        if up.stop_after_s is not None:
            done = total / _BYTES_PER_SECOND >= up.stop_after_s
        elif up.endpointer is not None:
            done = up.endpointer.process_audio(data) is not EndpointResult.CONTINUE
        else:
            return
        if not done:
            return
        up.stop_sent = True
        if up.turn is not None:
            up.turn.end_of_speech()
        reason = up.endpointer.endpointer.result if up.endpointer is not None else "fixed delay"
        _log.info(
            "connection %d: cloud endpoint (%s) after %.2f s of audio -> StopCapture",
            conn.id,
            reason,
            total / _BYTES_PER_SECOND,
        )
        downchannel = self.emu.downchannel_of(conn)
        if downchannel is None:
            _log.warning("connection %d: no downchannel for StopCapture", conn.id)
            return
        # StopCapture carries no dialogRequestId (§3.2). Pushed from a task: the upload keeps flowing.
        raw = directive_json("SpeechRecognizer", "StopCapture", {}, str(uuid.uuid4()), None)
        conn.spawn(self._push_quietly(conn, downchannel, raw, {}), "stopcapture")

    async def _push_quietly(
        self, conn: ServerConnection, stream: RequestStream, raw: bytes, attachments: dict[str, bytes]
    ) -> None:
        try:
            await self.emu.push_on(conn, stream, raw, attachments)
        except StreamGoneError as exc:
            _log.warning("connection %d: push failed: %s", conn.id, exc)

    # ------------------------------------------------------------------------------------------ answer

    async def _send_200_headers(self, conn: ServerConnection, stream_id: int, plan: _Plan) -> None:
        plan.headers_sent = True
        plan.boundary = new_boundary()
        headers = [
            ("content-type", response_content_type(plan.boundary)),
            ("x-amzn-requestid", str(uuid.uuid4())),
        ]
        await conn.send_headers(stream_id, 200, headers)

    async def _answer(
        self,
        conn: ServerConnection,
        stream: RequestStream,
        record: RecordedRequest,
        event: dict[str, Any],
        plan: _Plan,
        turn: Turn | None = None,
    ) -> None:
        fault, rule = plan.fault, plan.rule
        if fault is not None and fault.kind is FaultKind.RST_STREAM:
            _log.info("connection %d stream %d: injected RST_STREAM", conn.id, stream.stream_id)
            await conn.reset_stream(stream.stream_id)
            return
        if fault is not None and fault.kind is FaultKind.STALL:
            await asyncio.sleep(fault.seconds)
        if rule is not None and rule.delay_s:
            await asyncio.sleep(rule.delay_s)
        if fault is not None and fault.kind is FaultKind.STATUS:
            await self.emu.respond_exception(conn, stream, record, fault.status, "injected fault")
            return
        status = plan.status
        specs = await self._specs(event, rule, turn)
        if status == 204 and specs:
            status = plan.status = 200  # the brain answered an event with directives
        if status >= 400:
            await self.emu.respond_exception(conn, stream, record, status, "scenario rule")
            return
        if status == 204:
            await self.emu.respond(conn, stream, record, 204)
            return
        header = event["event"]["header"]
        drid = header.get("dialogRequestId") if isinstance(header.get("dialogRequestId"), str) else None
        json_parts: list[bytes] = []
        attachments: dict[str, bytes] = {}
        for spec in specs:
            raw, extra = await self.render(spec, drid, event)
            json_parts.append(raw)
            attachments.update(extra)
        if not plan.headers_sent:
            await self._send_200_headers(conn, stream.stream_id, plan)
        record.status = 200
        body = encode_response(
            plan.boundary,
            json_parts,
            attachments,
            malformed_json=fault is not None and fault.kind is FaultKind.MALFORMED_JSON,
            malformed_multipart=fault is not None and fault.kind is FaultKind.MALFORMED_MULTIPART,
        )
        if fault is not None and fault.kind is FaultKind.TRICKLE:
            for offset in range(0, len(body), fault.chunk_bytes):
                await conn.send_data(stream.stream_id, body[offset : offset + fault.chunk_bytes])
                await asyncio.sleep(fault.interval_ms / 1000.0)
            await conn.end_stream(stream.stream_id)
        else:
            await conn.send_data(stream.stream_id, body, end_stream=True)
        if rule is not None:
            for spec in rule.push:
                conn.spawn(self._push_later(conn, spec, event), f"push-{spec.name}")

    async def _push_later(self, conn: ServerConnection, spec: DirectiveSpec, event: dict[str, Any]) -> None:
        await asyncio.sleep(spec.after_s)
        raw, attachments = await self.render(spec, None, event)
        downchannel = self.emu.downchannel_of(conn)
        if downchannel is None:
            _log.warning("connection %d: no downchannel for scenario push %s", conn.id, spec.qualified_name)
            return
        await self._push_quietly(conn, downchannel, raw, attachments)

    def _start_turn(self, event: dict[str, Any]) -> Turn | None:
        try:
            return self.emu.brain.recognize(event)
        except Exception:
            _log.exception("brain failed to start a turn; the Recognize will get no directives")
            return None

    async def _specs(
        self, event: dict[str, Any], rule: Rule | None, turn: Turn | None
    ) -> tuple[DirectiveSpec, ...]:
        """The scenario rule's directives, else the brain's answer (a Recognize's turn, or any other event)."""
        if rule is not None:
            return rule.directives
        # The brain is a boundary: whatever goes wrong inside it costs this answer, never the server.
        try:
            async with asyncio.timeout(_BRAIN_TIMEOUT_S):
                if qualified_name(event) == RECOGNIZE:
                    if turn is None:
                        return ()  # the brain could not start a turn (logged)
                    return (await turn.answer()).directives
                return (await self.emu.brain.on_event(event)).directives
        except Exception:
            _log.exception("brain failed on %s; answering with no directives", qualified_name(event))
            return ()

    async def render(
        self, spec: DirectiveSpec, dialog_request_id: str | None, event: dict[str, Any] | None = None
    ) -> tuple[bytes, dict[str, bytes]]:
        """A directive's JSON part and its attachments; ``speech`` becomes an MP3 referenced by ``cid:``.
        ``event`` (the one being answered) fills ``$active_alert`` placeholders."""
        payload: dict[str, Any] = render_payload(
            dict(spec.payload), datetime.datetime.now(datetime.UTC), event, self.emu.media.url
        )
        attachments: dict[str, bytes] = {}
        if spec.speech is not None:
            cid = f"AvsdEmulator.{uuid.uuid4()}_{len(spec.speech)}"
            payload.setdefault("url", f"cid:{cid}")
            payload.setdefault("format", "AUDIO_MPEG")
            payload.setdefault("token", f"amzn1.as-ct.v1.avsd-emulator#ACRI#{cid}")
            attachments[cid] = await self.emu.brain.speech(spec.speech)
        return directive_json(
            spec.namespace, spec.name, payload, str(uuid.uuid4()), dialog_request_id
        ), attachments
