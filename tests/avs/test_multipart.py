"""The sans-IO multipart parser and writer (protocol reference §3.1, §3.2, §4.2, §4.4)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from avsd.avs.multipart import (
    BodyEnd,
    MultipartParser,
    PartData,
    PartEnd,
    PartEvent,
    PartHeaders,
    PartStart,
    boundary_from_content_type,
    closing_delimiter,
    delimiter_line,
    encode_parts,
    header_block,
    new_boundary,
    parse_content_type,
    part_header,
)
from avsd.errors import MultipartError

Headers = tuple[tuple[str, str], ...]


@dataclass
class Parsed:
    """Events merged into whole parts, to compare results independent of how the input was split."""

    parts: list[tuple[Headers, bytes]] = field(default_factory=list)
    ended: bool = False


def merge(events: Iterable[PartEvent]) -> Parsed:
    out = Parsed()
    current: bytearray | None = None
    headers: Headers = ()
    for event in events:
        assert not out.ended, f"event after BodyEnd: {event!r}"
        if isinstance(event, PartStart):
            assert current is None, "PartStart inside a part"
            current, headers = bytearray(), event.headers.items
        elif isinstance(event, PartData):
            assert current is not None, "PartData outside a part"
            assert event.data, "empty PartData"
            current += event.data
        elif isinstance(event, PartEnd):
            assert current is not None, "PartEnd outside a part"
            out.parts.append((headers, bytes(current)))
            current = None
        else:
            assert isinstance(event, BodyEnd)
            assert current is None, "BodyEnd inside a part"
            out.ended = True
    return out


def parse_chunks(boundary: str, chunks: Iterable[bytes], **kwargs: int) -> Parsed:
    parser = MultipartParser(boundary, **kwargs)
    events: list[PartEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.finish()
    assert parser.complete
    return merge(events)


def random_splits(data: bytes, rng: random.Random, max_size: int = 40) -> list[bytes]:
    chunks, i = [], 0
    while i < len(data):
        size = rng.randint(1, max_size)
        chunks.append(data[i : i + size])
        i += size
    return chunks


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def splittings(data: bytes) -> list[tuple[str, list[bytes]]]:
    rng = random.Random(20160207)
    return [
        ("whole", [data]),
        ("bytes", byte_by_byte(data)),
        *[(f"random-{n}", random_splits(data, rng)) for n in range(5)],
    ]


# The captured §4.4 example (JSON texts shortened, as in the reference).
SPEAK_JSON = (
    b'{"directive":{"header":{"namespace":"SpeechSynthesizer","name":"Speak",'
    b'"messageId":"019a5d54-1","dialogRequestId":"dialog-request-id-4"},'
    b'"payload":{"url":"cid:WhatsUpAction_1668927456","format":"AUDIO_MPEG",'
    b'"token":"amzn1.as-ct.v1.Domain:Application:#ACRI#WhatsUpAction"}}}'
)
EXPECT_JSON = (
    b'{"directive":{"header":{"namespace":"SpeechRecognizer","name":"ExpectSpeech",'
    b'"messageId":"4d2974b4-1","dialogRequestId":"dialog-request-id-4"},'
    b'"payload":{"timeoutInMilliseconds":8000}}}'
)
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64" + bytes(range(256)) * 4
CAPTURED_BOUNDARY = "854873ff-ac23-4ebd-b329-00bd8cccd94a"
CAPTURED = (
    b"--854873ff-ac23-4ebd-b329-00bd8cccd94a\r\n"
    b"Content-Type: application/json; charset=UTF-8\r\n"
    b"\r\n" + SPEAK_JSON + b"\r\n"
    b"--854873ff-ac23-4ebd-b329-00bd8cccd94a\r\n"
    b"Content-Type: application/json; charset=UTF-8\r\n"
    b"\r\n" + EXPECT_JSON + b"\r\n"
    b"--854873ff-ac23-4ebd-b329-00bd8cccd94a\r\n"
    b"Content-ID: <WhatsUpAction_1668927456>\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"\r\n" + MP3 + b"\r\n"
    b"--854873ff-ac23-4ebd-b329-00bd8cccd94a--\r\n"
)
JSON_HEADERS = (("Content-Type", "application/json; charset=UTF-8"),)
CAPTURED_PARTS = [
    (JSON_HEADERS, SPEAK_JSON),
    (JSON_HEADERS, EXPECT_JSON),
    ((("Content-ID", "<WhatsUpAction_1668927456>"), ("Content-Type", "application/octet-stream")), MP3),
]


@pytest.mark.parametrize(("how", "chunks"), splittings(CAPTURED))
def test_captured_event_response(how: str, chunks: list[bytes]) -> None:
    parsed = parse_chunks(CAPTURED_BOUNDARY, chunks)
    assert parsed.ended
    assert parsed.parts == CAPTURED_PARTS
    speak_headers = PartHeaders(parsed.parts[2][0])
    assert speak_headers.content_id == "WhatsUpAction_1668927456"
    assert speak_headers.content_type == "application/octet-stream"


def test_captured_body_equals_writer_output() -> None:
    assert encode_parts(CAPTURED_BOUNDARY, CAPTURED_PARTS) == CAPTURED


# Event upload (§4.2) with the quirks real clients sent: LF-only header lines, single-quoted names, padding.
UPLOAD_CASES: list[tuple[str, bytes, list[tuple[Headers, bytes]]]] = [
    (
        "sdk-like",
        b'--B\r\nContent-Disposition: form-data; name="metadata"\r\nContent-Type: application/json\r\n\r\n'
        b'{"event":{}}\r\n--B\r\nContent-Disposition: form-data; name="audio"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\r\n--B--\r\n",
        [
            (
                (("Content-Disposition", 'form-data; name="metadata"'), ("Content-Type", "application/json")),
                b'{"event":{}}',
            ),
            (
                (
                    ("Content-Disposition", 'form-data; name="audio"'),
                    ("Content-Type", "application/octet-stream"),
                ),
                b"\x00\x01",
            ),
        ],
    ),
    (
        "lf-header-lines",
        b"--B\nContent-Type: application/json;\n\n{}\r\n--B\nX: 1\n\nxy\r\n--B--",
        [((("Content-Type", "application/json;"),), b"{}"), ((("X", "1"),), b"xy")],
    ),
    (
        "preamble-and-padding",
        b"\r\n\r\nthis is a preamble\r\n--B \t\r\nA: 1\r\n\r\none\r\n--B\t\r\n\r\ntwo"
        b"\r\n--B-- \r\nepilogue --B\r\n",
        [((("A", "1"),), b"one"), ((), b"two")],
    ),
    ("crlf-preamble-only", b"\r\n--B\r\n\r\nx\r\n--B--\r\n", [((), b"x")]),
    ("no-parts", b"--B--\r\n", []),
    ("closing-then-epilogue-without-crlf", b"--B\r\n\r\nx\r\n--B--x\r\n--B\r\n", [((), b"x")]),
    ("empty-part-data", b"--B\r\nA: b\r\n\r\n\r\n--B--", [((("A", "b"),), b"")]),
    (  # `--B` not after CRLF, and `\r\n--B` followed by a character that cannot follow a delimiter
        "boundary-like-data-stays-data",
        b"--B\r\n\r\n--B\r\nx\r\n--Bx\r\n--B\x00\r\n--BB\r\n--B--\r\n",
        [((), b"--B\r\nx\r\n--Bx\r\n--B\x00\r\n--BB")],
    ),
    (
        "boundary-prefix-in-preamble",
        b"--Bxyz\r\nnot yet --B\r\n--B\r\n\r\ndata\r\n--B--",
        [((), b"data")],
    ),
    (
        "header-values-keep-colons-and-case",
        b"--B\r\nCONTENT-ID: <a:b>\r\nX-Empty:\r\n\r\n\xff\r\n--B--\r\n",
        [((("CONTENT-ID", "<a:b>"), ("X-Empty", "")), b"\xff")],
    ),
]


@pytest.mark.parametrize(("name", "body", "expected"), UPLOAD_CASES, ids=[c[0] for c in UPLOAD_CASES])
def test_accepted_bodies(name: str, body: bytes, expected: list[tuple[Headers, bytes]]) -> None:
    for _how, chunks in splittings(body):
        parsed = parse_chunks("B", chunks)
        assert parsed.ended
        assert parsed.parts == expected


REJECTED_CASES: list[tuple[str, bytes, dict[str, int]]] = [
    ("single-dash-after-delimiter", b"--B\r\n\r\nx\r\n--B-x", {}),
    ("padding-then-garbage", b"--B\r\n\r\nx\r\n--B  x\r\n", {}),
    ("cr-without-lf", b"--B\r\n\r\nx\r\n--B\rx", {}),
    ("first-delimiter-garbage", b"--B -\r\n", {}),
    ("header-without-colon", b"--B\r\nContent-Type application/json\r\n\r\n", {}),
    ("continuation-line", b"--B\r\nA: 1\r\n  folded\r\n\r\n", {}),
    ("header-name-with-space", b"--B\r\nA B: 1\r\n\r\n", {}),
    ("headers-too-long", b"--B\r\nA: " + b"x" * 200 + b"\r\n\r\n", {"max_header_bytes": 100}),
    ("headers-too-long-no-newline", b"--B\r\nA: " + b"x" * 200, {"max_header_bytes": 100}),
    ("no-delimiter-in-preamble", b"x" * 300, {"max_preamble_bytes": 100}),
    ("delimiter-too-late", b"x" * 150 + b"\r\n--B\r\n", {"max_preamble_bytes": 100}),
    ("padding-too-long", b"--B\r\n\r\nx\r\n--B" + b" " * 2000, {}),
]


@pytest.mark.parametrize(("name", "body", "limits"), REJECTED_CASES, ids=[c[0] for c in REJECTED_CASES])
def test_rejected_bodies(name: str, body: bytes, limits: dict[str, int]) -> None:
    for _how, chunks in splittings(body):
        parser = MultipartParser("B", **limits)
        with pytest.raises(MultipartError):
            for chunk in chunks:
                parser.feed(chunk)
            parser.finish()
        # The parser stays failed.
        with pytest.raises(MultipartError):
            parser.feed(b"--B--\r\n")


TRUNCATED = [
    b"",
    b"--B",
    b"--B\r\n",
    b"--B\r\nA: 1\r\n",
    b"--B\r\nA: 1\r\n\r\ndata",
    b"--B\r\nA: 1\r\n\r\ndata\r\n--B",
    b"--B\r\nA: 1\r\n\r\ndata\r\n--B-",
    b"--B\r\nA: 1\r\n\r\ndata\r\n--B\r\n",
]


@pytest.mark.parametrize("body", TRUNCATED)
def test_finish_without_closing_delimiter(body: bytes) -> None:
    parser = MultipartParser("B")
    parser.feed(body)
    assert not parser.complete
    with pytest.raises(MultipartError, match="closing delimiter"):
        parser.finish()


def test_data_after_finish_and_epilogue() -> None:
    parser = MultipartParser("B")
    events = parser.feed(b"--B\r\n\r\nx\r\n--B--")
    assert events[-1] == BodyEnd()
    assert parser.complete
    assert parser.feed(b"\r\nepilogue \r\n--B\r\n garbage") == []  # epilogue: ignored
    assert parser.finish() == []
    with pytest.raises(MultipartError, match="after finish"):
        parser.feed(b"more")


def test_empty_boundary_is_rejected() -> None:
    with pytest.raises(MultipartError):
        MultipartParser("")


def test_data_is_emitted_as_soon_as_it_is_safe() -> None:
    """A streamed audio part reaches the reader frame by frame; only a possible delimiter prefix is held."""
    parser = MultipartParser("B")
    assert parser.feed(part_header("B", [("Content-Type", "application/octet-stream")], first=True)) == [
        PartStart(PartHeaders((("Content-Type", "application/octet-stream"),)))
    ]
    frame = bytes(range(1, 250)) + b"\x00" * 71
    for _ in range(10):
        assert parser.feed(frame) == [PartData(frame)]
    # A frame ending with bytes that could start "\r\n--B" holds exactly those back ...
    assert parser.feed(b"abc\r\n-") == [PartData(b"abc")]
    # ... and releases them once they turn out to be data.
    assert parser.feed(b"-Bq") == [PartData(b"\r\n--Bq")]
    assert parser.feed(b"\r") == []
    assert parser.feed(b"\n--B--") == [PartEnd(), BodyEnd()]


def test_downchannel_stream_fed_forever() -> None:
    """A never-ending multipart/related body (§3.1, §3.2).

    Each directive is delivered when its delimiter arrives, before the next directive exists; attachments
    arrive in many pieces; finish() is never called.
    """
    content_type = "multipart/related; boundary=------abcde123; type=application/json"
    boundary = boundary_from_content_type(content_type)
    assert boundary == "------abcde123"
    rng = random.Random(7)
    parser = MultipartParser(boundary)
    # The server opens the body with the first delimiter line (no CRLF before it).
    assert parser.feed(b"--" + boundary.encode() + b"\r\n") == []
    for n in range(300):
        if n % 50 == 49:
            headers = [("Content-Type", "application/octet-stream"), ("Content-ID", f"<alert-{n}>")]
            payload = rng.randbytes(rng.randint(0, 5000))
        else:
            headers = [("Content-Type", "application/json; charset=UTF-8")]
            payload = b'{"directive":{"header":{"namespace":"SpeechRecognizer","name":"StopCapture",' + (
                b'"messageId":"m-%d"},"payload":{}}}' % n
            )
        wire = header_block(headers) + payload + delimiter_line(boundary)
        events: list[PartEvent] = []
        for chunk in random_splits(wire, rng, max_size=700):
            events += parser.feed(chunk)
        assert isinstance(events[0], PartStart)
        assert events[0].headers.items == tuple(headers)
        assert events[-1] == PartEnd()
        assert b"".join(e.data for e in events if isinstance(e, PartData)) == payload
        assert not parser.complete
        if n % 50 == 49:
            assert events[0].headers.content_id == f"alert-{n}"


def test_writer_layout() -> None:
    assert part_header("B", [("Name", "v")], first=True) == b"--B\r\nName: v\r\n\r\n"
    assert part_header("B", [("Name", "v")], first=False) == b"\r\n--B\r\nName: v\r\n\r\n"
    assert closing_delimiter("B") == b"\r\n--B--\r\n"
    assert delimiter_line("B") + header_block([]) == part_header("B", [], first=False)
    assert encode_parts("B", []) == b"--B--\r\n"
    assert (
        encode_parts("B", [([("A", "1")], b"x"), ([], b"")])
        == b"--B\r\nA: 1\r\n\r\nx\r\n--B\r\n\r\n\r\n--B--\r\n"
    )


@pytest.mark.parametrize(
    "data", [b"\r\n--B\r\n", b"x\r\n--B--", b"\r\n--B \t", b"\r\n--B\n", b"ends with\r\n--B", b"\r\n--B-x"]
)
def test_writer_refuses_data_containing_the_delimiter(data: bytes) -> None:
    with pytest.raises(ValueError, match="boundary"):
        encode_parts("B", [([], data)])


@pytest.mark.parametrize(
    "header", [("A", "1\r\nInjected: yes"), ("Bad:Name", "v"), ("", "v"), ("A\n", "v"), ("A B", "v")]
)
def test_writer_refuses_bad_headers(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="header"):
        part_header("B", [header], first=True)


def test_new_boundary_is_unique_and_usable_unquoted() -> None:
    boundaries = {new_boundary() for _ in range(100)}
    assert len(boundaries) == 100
    for boundary in boundaries:
        assert boundary_from_content_type(f"multipart/form-data; boundary={boundary}") == boundary


CONTENT_TYPES: list[tuple[str, str, dict[str, str]]] = [
    (  # §3.1, observed: unquoted type with a slash
        "multipart/related; boundary=------abcde123; type=application/json",
        "multipart/related",
        {"boundary": "------abcde123", "type": "application/json"},
    ),
    (  # §4.4, observed
        'multipart/related; boundary=854873ff-ac23; type="application/json"',
        "multipart/related",
        {"boundary": "854873ff-ac23", "type": "application/json"},
    ),
    ("application/json; charset=UTF-8", "application/json", {"charset": "UTF-8"}),
    ("application/json;", "application/json", {}),
    ("Application/JSON", "application/json", {}),
    ("", "", {}),
    (
        'multipart/form-data; BOUNDARY="a;b\\"c"; x = 1 ; flag',
        "multipart/form-data",
        {"boundary": 'a;b"c', "x": "1", "flag": ""},
    ),
    ("form-data; name='request'", "form-data", {"name": "request"}),
    ('form-data; name=audio; filename="x.wav"', "form-data", {"name": "audio", "filename": "x.wav"}),
    ("text/plain; a=1; a=2", "text/plain", {"a": "1"}),
    ('text/plain; a="unterminated', "text/plain", {"a": "unterminated"}),
]


@pytest.mark.parametrize(("value", "mime", "params"), CONTENT_TYPES)
def test_parse_content_type(value: str, mime: str, params: dict[str, str]) -> None:
    assert parse_content_type(value) == (mime, params)


@pytest.mark.parametrize(
    "value",
    ["application/json; boundary=x", "multipart/related", 'multipart/related; boundary=""', "", "multipart"],
)
def test_boundary_from_content_type_rejects(value: str) -> None:
    with pytest.raises(MultipartError):
        boundary_from_content_type(value)


HEADER_CASES: list[tuple[Headers, str, str | None, str | None]] = [
    ((("Content-Disposition", 'form-data; name="metadata"'),), "", None, "metadata"),
    ((("content-disposition", "form-data; name='request'"),), "", None, "request"),
    ((("Content-Disposition", "form-data; name=audio"),), "", None, "audio"),
    ((("Content-Disposition", 'form-data; filename="f.wav"; name="audio"'),), "", None, "audio"),
    ((("Content-Disposition", 'form-data; filename="name=x"'),), "", None, None),
    (
        (("CONTENT-TYPE", "Application/Octet-Stream"), ("Content-ID", " <abc> ")),
        "application/octet-stream",
        "abc",
        None,
    ),
    (
        (("Content-Type", "application/json; charset=UTF-8"), ("Content-Type", "text/plain")),
        "application/json",
        None,
        None,
    ),
    ((), "", None, None),
]


@pytest.mark.parametrize(("items", "content_type", "content_id", "name"), HEADER_CASES)
def test_part_headers(items: Headers, content_type: str, content_id: str | None, name: str | None) -> None:
    headers = PartHeaders(items)
    assert headers.content_type == content_type
    assert headers.content_id == content_id
    assert headers.name == name


def test_part_headers_get_is_case_insensitive() -> None:
    headers = PartHeaders((("X-Thing", "1"), ("x-thing", "2")))
    assert headers.get("X-THING") == "1"
    assert headers.get("missing") is None
    assert headers.get("missing", "d") == "d"


# -- property tests -----------------------------------------------------------------------------------------

BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?"
boundaries = st.text(alphabet=BCHARS, min_size=1, max_size=70)
header_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABC", min_size=1, max_size=20)
header_values = st.text(alphabet=st.characters(exclude_characters="\r\n", codec="utf-8"), max_size=40)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, list[tuple[Headers, bytes]], list[int]]:
    boundary = draw(boundaries)
    raw = boundary.encode()
    # Data that likes to look like delimiters: mix random bytes with boundary fragments.
    fragments = st.sampled_from([b"\r\n--" + raw + b"x", b"--" + raw, b"\r\n-", b"\r\n", b"\r", b"-", raw])
    data = st.lists(st.one_of(st.binary(max_size=30), fragments), max_size=8).map(b"".join)
    headers = st.lists(st.tuples(header_names, header_values.map(str.strip)), max_size=3).map(tuple)
    parts = draw(st.lists(st.tuples(headers, data), max_size=5))
    cuts = draw(st.lists(st.integers(min_value=0, max_value=2000), max_size=20))
    return boundary, parts, cuts


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_round_trip(case: tuple[str, list[tuple[Headers, bytes]], list[int]]) -> None:
    boundary, parts, cuts = case
    try:
        body = encode_parts(boundary, parts)
    except ValueError:
        assume(False)
        raise
    parsed = parse_chunks(boundary, split_at(body, cuts))
    assert parsed.ended
    assert parsed.parts == [(tuple(h), d) for h, d in parts]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["B", "--", "854873ff-ac23"]),
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(
                [b"--B", b"\r\n--B", b"\r\n", b"\n", b"--", b" ", b"A: 1", b"\r\n--B--", b"\r\n\r\n"]
            ),
        ),
        max_size=30,
    ),
    st.lists(st.integers(min_value=0, max_value=5000), max_size=30),
    st.integers(min_value=0, max_value=200),
)
def test_garbage_never_hangs_and_only_raises_multipart_error(
    boundary: str, pieces: list[bytes], cuts: list[int], limit: int
) -> None:
    body = b"".join(pieces)
    parser = MultipartParser(boundary, max_header_bytes=limit + 10, max_preamble_bytes=limit)
    events: list[PartEvent] = []
    try:
        for chunk in split_at(body, cuts):
            events += parser.feed(chunk)
        events += parser.finish()
    except MultipartError:
        return
    # Whatever was accepted is well-formed.
    assert merge(events).ended
    assert parser.complete


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_split_independence(body: bytes, cuts: list[int]) -> None:
    """Any input gives the same merged result (or the same failure) however it is split."""

    def outcome(chunks: list[bytes]) -> Parsed | str:
        try:
            return parse_chunks("B", chunks)
        except MultipartError:
            return "error"

    prefixed = b"--B\r\n" + body
    whole = outcome([prefixed])
    assert outcome(split_at(prefixed, cuts)) == whole
