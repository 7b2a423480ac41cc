"""What the emulator says on the wire: envelope validation, exception bodies, multipart response/push bytes.

Pure (no I/O, no clock). Protocol quirks reproduced on purpose:
- The downchannel's Content-Type has an UNQUOTED ``type=application/json`` (§3.1, observed on real AVS);
  event responses quote it (``type="application/json"``, §4.4).
- A downchannel part is written together with the delimiter line that follows it (``\\r\\n--B\\r\\n``), so
  a client's incremental parser can finish the part at once instead of waiting for the next directive. The
  stream is therefore always "inside" the next part's headers; a clean close sends an empty, header-less part
  and the closing delimiter (clients ignore parts without a content type, as the SDK's MimeResponseSink does).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avsd.avs.messages import exception_body
from avsd.avs.multipart import closing_delimiter, part_header
from avsd.emulator.faults import EXCEPTION_CODES

DOWNCHANNEL_BOUNDARY = "------abcde123"
DOWNCHANNEL_CONTENT_TYPE = f"multipart/related; boundary={DOWNCHANNEL_BOUNDARY}; type=application/json"
JSON_PART = (("Content-Type", "application/json; charset=UTF-8"),)
# Invalid JSON that still looks like the start of a directive (for the malformed_json fault).
MALFORMED_JSON = b'{"directive": {"header": {"namespace": "SpeechSynthesizer", "name": '
# A header line without a colon: every MIME parser must reject it (malformed_multipart on the downchannel).
MALFORMED_HEADER = b"Content-Type application/json; charset=UTF-8\r\n\r\n{}\r\n"

# Events whose envelope must carry the full context (§5.2).
_CONTEXT_REQUIRED = {"SpeechRecognizer.Recognize", "System.SynchronizeState"}


@dataclass(frozen=True, slots=True)
class PlainRequest:
    """A whole HTTP/1.1 (or buffered HTTP/2) request to a plain route. ``body`` None: it was too large."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes | None
    http_version: str
    connection_id: int
    request_number: int


@dataclass(frozen=True, slots=True)
class PlainResponse:
    """A whole answer of a plain route (LWA, media) for either HTTP version. ``stall``: send ``body``, then
    nothing more until the client goes away (a stream that hangs)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    stall: bool = False


def plain_text(status: int, text: str, extra: tuple[tuple[str, str], ...] = ()) -> PlainResponse:
    body = (text + "\n").encode()
    headers = (("content-type", "text/plain; charset=utf-8"), ("content-length", str(len(body))), *extra)
    return PlainResponse(status, headers, body)


def response_content_type(boundary: str) -> str:
    return f'multipart/related; boundary={boundary}; type="application/json"'


def exception_response(status: int, description: str) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of a non-2xx AVS answer: a single JSON System.Exception, not multipart (§5.4)."""
    body = exception_body(EXCEPTION_CODES.get(status, "N/A"), description)
    return [("content-type", "application/json"), ("content-length", str(len(body)))], body


def validate_event(doc: Any) -> str | None:
    """None if ``doc`` is a well-formed event envelope, else what is wrong (for the 400 description).

    ``messageId`` must be present but may be empty: alexa_client sends ``""`` on SynchronizeState and AVS
    accepted it (§4.2). ``payload`` may be missing (the SDK omits an empty one, §5.1).
    """
    if not isinstance(doc, dict):
        return "the metadata part is not a JSON object"
    event = doc.get("event")
    if not isinstance(event, dict):
        return "missing 'event' object"
    header = event.get("header")
    if not isinstance(header, dict):
        return "missing 'event.header' object"
    for key in ("namespace", "name"):
        if not isinstance(header.get(key), str) or not header[key]:
            return f"missing 'event.header.{key}'"
    if not isinstance(header.get("messageId"), str):
        return "missing 'event.header.messageId'"
    if "payload" in event and not isinstance(event["payload"], dict):
        return "'event.payload' is not an object"
    qualified = f"{header['namespace']}.{header['name']}"
    if qualified == "SpeechRecognizer.Recognize":
        drid = header.get("dialogRequestId")
        if not isinstance(drid, str) or not drid:
            return "Recognize requires 'event.header.dialogRequestId'"
    needs_context = qualified in _CONTEXT_REQUIRED or (
        header["namespace"] == "PlaybackController" and header["name"].endswith("CommandIssued")
    )
    context = doc.get("context")
    if needs_context and context is None:
        return f"{qualified} requires 'context'"
    if context is not None and not isinstance(context, list):
        return "'context' is not an array"
    return None


def qualified_name(doc: Mapping[str, Any]) -> str:
    header = doc["event"]["header"]
    return f"{header['namespace']}.{header['name']}"


def default_reply_text(now: datetime.datetime) -> str:
    return f"This is the a v s d emulator. It is {now.hour}:{now.minute:02d}."


def directive_json(
    namespace: str, name: str, payload: Mapping[str, Any], message_id: str, dialog_request_id: str | None
) -> bytes:
    header: dict[str, Any] = {"namespace": namespace, "name": name, "messageId": message_id}
    if dialog_request_id:
        header["dialogRequestId"] = dialog_request_id
    return json.dumps({"directive": {"header": header, "payload": dict(payload)}}).encode()


def binary_headers(content_id: str) -> tuple[tuple[str, str], ...]:
    return (("Content-ID", f"<{content_id}>"), ("Content-Type", "application/octet-stream"))


def encode_response(
    boundary: str,
    json_parts: Sequence[bytes],
    attachments: Mapping[str, bytes],
    *,
    malformed_json: bool = False,
    malformed_multipart: bool = False,
) -> bytes:
    """A whole event-response body: JSON parts first, then the binary parts (§4.4)."""
    parts: list[tuple[Sequence[tuple[str, str]], bytes]] = [(JSON_PART, p) for p in json_parts]
    if malformed_json and parts:
        parts[0] = (JSON_PART, MALFORMED_JSON)
    parts += [(binary_headers(cid), data) for cid, data in attachments.items()]
    out = bytearray()
    for index, (headers, data) in enumerate(parts):
        out += part_header(boundary, headers, first=index == 0)
        out += data
    if malformed_multipart:
        # Truncated: no closing delimiter before END_STREAM, so the client's parser must report it.
        return bytes(out[: max(len(out) // 2, 1)])
    out += closing_delimiter(boundary) if parts else b"--" + boundary.encode() + b"--\r\n"
    return bytes(out)


def encode_push(
    first: bool,
    json_part: bytes,
    attachments: Mapping[str, bytes],
    *,
    malformed_json: bool = False,
    malformed_multipart: bool = False,
) -> bytes:
    """One downchannel push: the directive part and its binary parts, each followed by a delimiter line."""
    delimiter_line = b"\r\n--" + DOWNCHANNEL_BOUNDARY.encode() + b"\r\n"
    out = bytearray(b"--" + DOWNCHANNEL_BOUNDARY.encode() + b"\r\n" if first else b"")
    if malformed_multipart:
        return bytes(out) + MALFORMED_HEADER
    parts: list[tuple[Sequence[tuple[str, str]], bytes]] = [
        (JSON_PART, MALFORMED_JSON if malformed_json else json_part)
    ]
    parts += [(binary_headers(cid), data) for cid, data in attachments.items()]
    for headers, data in parts:
        for name, value in headers:
            out += f"{name}: {value}\r\n".encode()
        out += b"\r\n" + data + delimiter_line
    return bytes(out)


def encode_downchannel_close(first: bool) -> bytes:
    """Clean end of the downchannel body (see the module docstring for the empty part)."""
    if first:
        return b"--" + DOWNCHANNEL_BOUNDARY.encode() + b"--\r\n"
    return b"\r\n" + closing_delimiter(DOWNCHANNEL_BOUNDARY)
