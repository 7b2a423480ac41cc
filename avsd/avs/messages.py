"""AVS message envelopes (protocol reference §5): events going up, directives coming down. Pure, no I/O.

Protocol quirks handled here:
- ``dialogRequestId`` is omitted (not empty) on events that have none (§5.1).
- A directive's ``dialogRequestId`` of the literal string ``"null"`` means absent (§5.3, avs-device-sdk #2092).
- ``payload`` is always an object; events send ``{}`` when they have nothing to say.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from avsd.errors import AvsServerError, DirectiveParseError

API_VERSION = "v20160207"
EVENTS_PATH = f"/{API_VERSION}/events"
DIRECTIVES_PATH = f"/{API_VERSION}/directives"
PING_PATH = "/ping"

JsonObject = dict[str, Any]


def new_message_id() -> str:
    return str(uuid.uuid4())


class ExceptionErrorType(StrEnum):
    """``System.ExceptionEncountered`` error types (§9.3)."""

    UNEXPECTED_INFORMATION_RECEIVED = "UNEXPECTED_INFORMATION_RECEIVED"
    UNSUPPORTED_OPERATION = "UNSUPPORTED_OPERATION"
    INTERNAL_ERROR = "INTERNAL_ERROR"


@dataclass(frozen=True, slots=True)
class Header:
    namespace: str
    name: str
    message_id: str = field(default_factory=new_message_id)
    dialog_request_id: str | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}.{self.name}"

    def to_json(self) -> JsonObject:
        out: JsonObject = {"namespace": self.namespace, "name": self.name, "messageId": self.message_id}
        if self.dialog_request_id:
            out["dialogRequestId"] = self.dialog_request_id
        return out


@dataclass(frozen=True, slots=True)
class Event:
    """A device -> cloud message. ``context`` is None for events that carry none."""

    header: Header
    payload: Mapping[str, Any] = field(default_factory=dict)
    context: Sequence[Mapping[str, Any]] | None = None

    @classmethod
    def new(
        cls,
        namespace: str,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        dialog_request_id: str | None = None,
        context: Sequence[Mapping[str, Any]] | None = None,
    ) -> Event:
        return cls(Header(namespace, name, dialog_request_id=dialog_request_id), dict(payload or {}), context)

    @property
    def qualified_name(self) -> str:
        return self.header.qualified_name

    def with_context(self, context: Sequence[Mapping[str, Any]]) -> Event:
        return Event(self.header, self.payload, list(context))

    def to_json_obj(self) -> JsonObject:
        out: JsonObject = {}
        if self.context is not None:
            out["context"] = list(self.context)
        out["event"] = {"header": self.header.to_json(), "payload": dict(self.payload)}
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_json_obj(), separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Directive:
    """A cloud -> device message, as parsed from one JSON part. ``raw`` is the part's text."""

    header: Header
    payload: Mapping[str, Any]
    raw: str = ""

    @property
    def namespace(self) -> str:
        return self.header.namespace

    @property
    def name(self) -> str:
        return self.header.name

    @property
    def qualified_name(self) -> str:
        return self.header.qualified_name

    @property
    def dialog_request_id(self) -> str | None:
        return self.header.dialog_request_id

    @property
    def message_id(self) -> str:
        return self.header.message_id

    def to_json_obj(self) -> JsonObject:
        return {"directive": {"header": self.header.to_json(), "payload": dict(self.payload)}}

    def to_json(self) -> bytes:
        return json.dumps(self.to_json_obj(), separators=(",", ":")).encode()

    @classmethod
    def new(
        cls,
        namespace: str,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        dialog_request_id: str | None = None,
        message_id: str | None = None,
    ) -> Directive:
        header = Header(namespace, name, message_id or new_message_id(), dialog_request_id)
        return cls(header, dict(payload or {}))


def _required_str(obj: Mapping[str, Any], key: str, raw: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise DirectiveParseError(f"directive header field {key!r} missing or not a string", raw)
    return value


def parse_directive(data: bytes | str) -> Directive:
    """Parse one JSON part ``{"directive": {"header": ..., "payload": ...}}``.

    Raises DirectiveParseError (carrying the raw text for ``unparsedDirective``) on anything else.
    """
    if isinstance(data, bytes | bytearray):
        try:
            raw = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DirectiveParseError(f"directive is not UTF-8: {exc}", data.decode("utf-8", "replace")) from exc
    else:
        raw = data
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # deeply nested garbage makes json raise RecursionError
        raise DirectiveParseError(f"directive is not valid JSON: {str(exc)[:200]}", raw) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("directive"), dict):
        raise DirectiveParseError("JSON part has no top-level 'directive' object", raw)
    body = doc["directive"]
    header = body.get("header")
    if not isinstance(header, dict):
        raise DirectiveParseError("directive has no 'header' object", raw)
    payload = body.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise DirectiveParseError("directive 'payload' is not an object", raw)
    dialog_request_id = header.get("dialogRequestId")
    if dialog_request_id in ("", "null") or not isinstance(dialog_request_id, str):
        dialog_request_id = None
    return Directive(
        Header(
            _required_str(header, "namespace", raw),
            _required_str(header, "name", raw),
            _required_str(header, "messageId", raw),
            dialog_request_id,
        ),
        payload,
        raw,
    )


def exception_encountered(unparsed_directive: str, error_type: ExceptionErrorType, message: str) -> Event:
    """``System.ExceptionEncountered`` (§6.8, §9.3); sent with an empty context array."""
    return Event.new(
        "System",
        "ExceptionEncountered",
        {"unparsedDirective": unparsed_directive, "error": {"type": str(error_type), "message": message}},
        context=[],
    )


def exception_body(code: str, description: str) -> bytes:
    """The JSON body of a non-2xx AVS answer (§5.4). Used by the emulator."""
    doc = {
        "header": {"namespace": "System", "name": "Exception", "messageId": new_message_id()},
        "payload": {"code": code, "description": description},
    }
    return json.dumps(doc).encode()


def parse_exception_body(status: int, body: bytes) -> AvsServerError:
    """Turn a non-2xx answer into AvsServerError. Tolerates a missing, empty or non-JSON body."""
    code, description = "N/A", ""
    try:
        doc = json.loads(body.decode("utf-8", errors="replace")) if body else None
    except (ValueError, RecursionError):
        doc = None
    if isinstance(doc, dict):
        payload = doc.get("payload")
        if isinstance(payload, dict):
            code = str(payload.get("code") or code)
            description = str(payload.get("description") or "")
    elif body:
        description = body[:200].decode("utf-8", errors="replace")
    return AvsServerError(status, code, description)


def context_entry(namespace: str, name: str, payload: Mapping[str, Any]) -> JsonObject:
    """One component state for an event's ``context`` array (§5.2)."""
    return {"header": {"namespace": namespace, "name": name}, "payload": dict(payload)}
