"""AVS message envelopes (protocol reference §5, §6.8, §9.3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from avsd.avs.messages import (
    Directive,
    Event,
    ExceptionErrorType,
    Header,
    context_entry,
    exception_body,
    exception_encountered,
    new_message_id,
    parse_directive,
    parse_exception_body,
)
from avsd.errors import AvsProtocolError, AvsServerError, DirectiveParseError


def directive_json(header: dict[str, Any] | None = None, **extra: Any) -> str:
    body: dict[str, Any] = {
        "header": {"namespace": "SpeechSynthesizer", "name": "Speak", "messageId": "m-1", **(header or {})}
    }
    body.update(extra)
    return json.dumps({"directive": body})


# (id, input, namespace, name, messageId, dialogRequestId, payload)
GOOD: list[tuple[str, bytes | str, str, str, str, str | None, dict[str, Any]]] = [
    (
        "full",
        directive_json({"dialogRequestId": "d-1"}, payload={"url": "cid:x", "format": "AUDIO_MPEG"}),
        "SpeechSynthesizer",
        "Speak",
        "m-1",
        "d-1",
        {"url": "cid:x", "format": "AUDIO_MPEG"},
    ),
    ("bytes-input", directive_json(payload={}).encode(), "SpeechSynthesizer", "Speak", "m-1", None, {}),
    # §3.2: StopCapture on the downchannel has no dialogRequestId.
    (
        "stopcapture-no-dialog-id",
        '{"directive":{"header":{"namespace":"SpeechRecognizer","name":"StopCapture","messageId":"x"},'
        '"payload":{}}}',
        "SpeechRecognizer",
        "StopCapture",
        "x",
        None,
        {},
    ),
    # §5.3, avs-device-sdk #2092: the literal string "null" means absent.
    (
        "null-string-dialog-id",
        directive_json({"dialogRequestId": "null"}),
        "SpeechSynthesizer",
        "Speak",
        "m-1",
        None,
        {},
    ),
    (
        "empty-dialog-id",
        directive_json({"dialogRequestId": ""}),
        "SpeechSynthesizer",
        "Speak",
        "m-1",
        None,
        {},
    ),
    (
        "json-null-dialog-id",
        directive_json({"dialogRequestId": None}),
        "SpeechSynthesizer",
        "Speak",
        "m-1",
        None,
        {},
    ),
    (
        "numeric-dialog-id",
        directive_json({"dialogRequestId": 7}),
        "SpeechSynthesizer",
        "Speak",
        "m-1",
        None,
        {},
    ),
    ("missing-payload", directive_json(), "SpeechSynthesizer", "Speak", "m-1", None, {}),
    ("null-payload", directive_json(payload=None), "SpeechSynthesizer", "Speak", "m-1", None, {}),
    (
        "unicode-and-extra-keys",
        directive_json({"extra": 1}, payload={"text": "Grüße"}, unknown=True),
        "SpeechSynthesizer",
        "Speak",
        "m-1",
        None,
        {"text": "Grüße"},
    ),
    ("whitespace", "  \n" + directive_json() + "\r\n", "SpeechSynthesizer", "Speak", "m-1", None, {}),
]


@pytest.mark.parametrize(
    ("data", "namespace", "name", "message_id", "dialog_request_id", "payload"),
    [case[1:] for case in GOOD],
    ids=[case[0] for case in GOOD],
)
def test_parse_directive_good(
    data: bytes | str,
    namespace: str,
    name: str,
    message_id: str,
    dialog_request_id: str | None,
    payload: dict[str, Any],
) -> None:
    directive = parse_directive(data)
    assert directive.namespace == namespace
    assert directive.name == name
    assert directive.qualified_name == f"{namespace}.{name}"
    assert directive.message_id == message_id
    assert directive.dialog_request_id == dialog_request_id
    assert dict(directive.payload) == payload
    assert directive.raw == (data.decode() if isinstance(data, bytes) else data)


BAD: list[tuple[str, bytes | str]] = [
    ("invalid-json", '{"directive": '),
    ("empty", ""),
    ("empty-bytes", b""),
    ("not-utf8-and-not-json", b"\xff\xfe\x00garbage"),
    ("utf8-bom", b"\xef\xbb\xbf" + directive_json().encode()),
    ("top-level-array", "[]"),
    ("top-level-string", '"directive"'),
    ("top-level-null", "null"),
    ("no-directive-key", '{"event": {}}'),
    ("directive-not-object", '{"directive": []}'),
    ("directive-null", '{"directive": null}'),
    ("no-header", '{"directive": {"payload": {}}}'),
    ("header-not-object", '{"directive": {"header": "x", "payload": {}}}'),
    ("payload-list", directive_json(payload=[])),
    ("payload-string", directive_json(payload="text")),
    ("payload-number", directive_json(payload=3)),
    ("missing-namespace", directive_json({"namespace": None})),
    ("missing-name", json.dumps({"directive": {"header": {"namespace": "A", "messageId": "m"}}})),
    ("missing-message-id", json.dumps({"directive": {"header": {"namespace": "A", "name": "B"}}})),
    ("empty-name", directive_json({"name": ""})),
    ("numeric-namespace", directive_json({"namespace": 5})),
]


@pytest.mark.parametrize("data", [case[1] for case in BAD], ids=[case[0] for case in BAD])
def test_parse_directive_bad(data: bytes | str) -> None:
    with pytest.raises(DirectiveParseError) as info:
        parse_directive(data)
    expected_raw = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    assert info.value.raw == expected_raw
    assert isinstance(info.value, AvsProtocolError)
    assert info.value.code == "directive-malformed"


def test_parse_directive_rejects_non_utf8_inside_valid_json() -> None:
    data = directive_json({"namespace": "SpeechSynthesizerX"}).encode().replace(b"X", b"\xff")
    with pytest.raises(DirectiveParseError):
        parse_directive(data)


def test_parse_directive_deeply_nested_json() -> None:
    with pytest.raises(DirectiveParseError):
        parse_directive("[" * 100_000)


def test_directive_round_trip() -> None:
    original = Directive.new(
        "Speaker", "SetVolume", {"volume": 40}, dialog_request_id="d-9", message_id="m-9"
    )
    parsed = parse_directive(original.to_json())
    assert parsed.header == original.header
    assert parsed.payload == {"volume": 40}
    assert parsed.to_json_obj() == original.to_json_obj()


# (id, event, expected JSON object)
EVENTS: list[tuple[str, Event, dict[str, Any]]] = [
    (
        "no-dialog-id-no-context",
        Event(Header("SpeechSynthesizer", "SpeechStarted", "m-1"), {"token": "t"}),
        {
            "event": {
                "header": {"namespace": "SpeechSynthesizer", "name": "SpeechStarted", "messageId": "m-1"},
                "payload": {"token": "t"},
            }
        },
    ),
    (
        "recognize-with-dialog-id-and-context",
        Event(
            Header("SpeechRecognizer", "Recognize", "m-2", "d-2"),
            {"profile": "NEAR_FIELD"},
            [context_entry("Speaker", "VolumeState", {"volume": 50, "muted": False})],
        ),
        {
            "context": [
                {
                    "header": {"namespace": "Speaker", "name": "VolumeState"},
                    "payload": {"volume": 50, "muted": False},
                }
            ],
            "event": {
                "header": {
                    "namespace": "SpeechRecognizer",
                    "name": "Recognize",
                    "messageId": "m-2",
                    "dialogRequestId": "d-2",
                },
                "payload": {"profile": "NEAR_FIELD"},
            },
        },
    ),
    (
        "empty-dialog-id-is-omitted",
        Event(Header("System", "UserInactivityReport", "m-3", ""), {"inactiveTimeInSeconds": 1}),
        {
            "event": {
                "header": {"namespace": "System", "name": "UserInactivityReport", "messageId": "m-3"},
                "payload": {"inactiveTimeInSeconds": 1},
            }
        },
    ),
    (
        "empty-context-is-kept",
        Event(Header("System", "SynchronizeState", "m-4"), {}, []),
        {
            "context": [],
            "event": {
                "header": {"namespace": "System", "name": "SynchronizeState", "messageId": "m-4"},
                "payload": {},
            },
        },
    ),
]


@pytest.mark.parametrize(("event", "expected"), [c[1:] for c in EVENTS], ids=[c[0] for c in EVENTS])
def test_event_to_json(event: Event, expected: dict[str, Any]) -> None:
    assert event.to_json_obj() == expected
    wire = event.to_json()
    assert json.loads(wire) == expected
    assert b" " not in wire.replace(b"NEAR_FIELD", b"")  # compact separators
    # context, when present, comes before event (the SDK merges {"context": ...} with {"event": ...}).
    assert list(json.loads(wire)) == list(expected)


def test_event_new_and_with_context() -> None:
    payload = {"a": 1}
    event = Event.new("Alerts", "AlertStarted", payload, dialog_request_id=None)
    payload["a"] = 2  # Event.new copies the payload
    assert event.payload == {"a": 1}
    assert event.context is None
    assert event.qualified_name == "Alerts.AlertStarted"
    assert "context" not in event.to_json_obj()
    assert "dialogRequestId" not in event.to_json_obj()["event"]["header"]
    with_context = event.with_context([context_entry("A", "B", {})])
    assert with_context.header == event.header
    assert with_context.to_json_obj()["context"] == [
        {"header": {"namespace": "A", "name": "B"}, "payload": {}}
    ]
    assert Event.new("A", "B").payload == {}


def test_message_ids_are_unique() -> None:
    assert len({new_message_id() for _ in range(1000)}) == 1000
    assert Event.new("A", "B").header.message_id != Event.new("A", "B").header.message_id


@pytest.mark.parametrize("error_type", list(ExceptionErrorType))
def test_exception_encountered(error_type: ExceptionErrorType) -> None:
    event = exception_encountered('{"directive": bad', error_type, "could not parse")
    doc = json.loads(event.to_json())
    assert doc["context"] == []
    header = doc["event"]["header"]
    assert (header["namespace"], header["name"]) == ("System", "ExceptionEncountered")
    assert "dialogRequestId" not in header
    assert doc["event"]["payload"] == {
        "unparsedDirective": '{"directive": bad',
        "error": {"type": error_type.value, "message": "could not parse"},
    }


# (id, status, body, expected code, expected description)
EXCEPTION_BODIES: list[tuple[str, int, bytes, str, str]] = [
    (
        "json",
        400,
        b'{"header":{"namespace":"System","name":"Exception","messageId":"m"},'
        b'"payload":{"code":"INVALID_REQUEST_EXCEPTION","description":"bad event"}}',
        "INVALID_REQUEST_EXCEPTION",
        "bad event",
    ),
    (
        "json-null-description",
        403,
        b'{"payload":{"code":"UNAUTHORIZED_REQUEST_EXCEPTION","description":null}}',
        "UNAUTHORIZED_REQUEST_EXCEPTION",
        "",
    ),
    ("json-no-description", 429, b'{"payload":{"code":"THROTTLING_EXCEPTION"}}', "THROTTLING_EXCEPTION", ""),
    ("json-no-payload", 500, b'{"header":{}}', "N/A", ""),
    ("json-payload-not-object", 500, b'{"payload":"x"}', "N/A", ""),
    ("empty", 503, b"", "N/A", ""),
    (
        "html",
        502,
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        "N/A",
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
    ),
    ("html-truncated", 500, b"<p>" + b"x" * 300, "N/A", "<p>" + "x" * 197),
    ("json-array", 500, b"[1]", "N/A", "[1]"),
    ("non-utf8", 500, b"\xffoops", "N/A", "\ufffdoops"),
]


@pytest.mark.parametrize(
    ("status", "body", "code", "description"),
    [c[1:] for c in EXCEPTION_BODIES],
    ids=[c[0] for c in EXCEPTION_BODIES],
)
def test_parse_exception_body(status: int, body: bytes, code: str, description: str) -> None:
    error = parse_exception_body(status, body)
    assert isinstance(error, AvsServerError)
    assert error.status == status
    assert error.exception_code == code
    assert error.description == description
    assert str(status) in str(error)


def test_exception_body_round_trip() -> None:
    body = exception_body("UNAUTHORIZED_REQUEST_EXCEPTION", "token expired")
    doc = json.loads(body)
    assert doc["header"]["namespace"] == "System"
    assert doc["header"]["name"] == "Exception"
    assert doc["header"]["messageId"]
    error = parse_exception_body(403, body)
    assert (error.exception_code, error.description) == ("UNAUTHORIZED_REQUEST_EXCEPTION", "token expired")


def test_parse_exception_body_deeply_nested_json() -> None:
    assert parse_exception_body(500, b"[" * 100_000).exception_code == "N/A"
