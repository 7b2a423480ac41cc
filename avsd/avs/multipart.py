"""Incremental, sans-IO multipart parser and writer (protocol reference §3.2, §4.2, §4.4).

Bytes in, events out: no sockets, no asyncio, no clock. The same parser reads the never-ending downchannel
(``multipart/related``), every event response, and — in the emulator — the device's ``multipart/form-data``
uploads while the audio part is still streaming::

    parser = MultipartParser(boundary_from_content_type(headers["content-type"]))
    for chunk in stream:
        for event in parser.feed(chunk):   # PartStart, PartData*, PartEnd, ..., BodyEnd
            ...
    parser.finish()                         # MultipartError if the closing delimiter never came

Design:
- ``PartData`` is emitted as soon as it is safe: only a tail that could be the start of ``\\r\\n--BOUNDARY``
  is held back, so a 320-byte audio frame reaches the reader in the same ``feed`` call that brought it.
- Linear time: one ``bytearray`` buffer, ``find`` with offsets, front deletion (amortised O(1) in CPython),
  and the scan position is remembered across feeds so a header line arriving byte by byte is not re-scanned.
- Every failure is a :class:`~avsd.errors.MultipartError`; after one, the parser stays failed.

Quirks accepted (all seen in the wild, see §3.1, §4.2):
- ``type=application/json`` unquoted in Content-Type params (a ``/`` in a token; strict MIME parsers reject
  it); single-quoted ``name='x'``; a trailing ``;``.
- Preamble (or just CRLFs) before the first delimiter; a first delimiter at offset 0 with no CRLF before it.
- Header lines ending in a bare LF; transport padding (spaces/tabs) after a delimiter; no CRLF after the
  closing ``--``; an epilogue after the closing delimiter (ignored).

Inside a part, ``\\r\\n--BOUNDARY`` is a delimiter when followed by ``--``, transport padding or a line end;
followed by anything else the bytes are data (RFC 2046 §5.1.1: a boundary may prefix a longer line).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, auto

from avsd.avs.attachments import normalize_content_id
from avsd.errors import MultipartError

__all__ = [
    "BodyEnd",
    "MultipartParser",
    "PartData",
    "PartEnd",
    "PartEvent",
    "PartHeaders",
    "PartStart",
    "boundary_from_content_type",
    "closing_delimiter",
    "delimiter_line",
    "encode_parts",
    "header_block",
    "new_boundary",
    "parse_content_type",
    "part_header",
]


_CR = 0x0D
_LF = 0x0A
_SP = 0x20
_HT = 0x09
_DASH = 0x2D
# Transport padding after a delimiter is "*LWSP-char"; a few bytes in practice. Bounding it keeps a hostile
# stream of spaces from growing the held-back buffer forever.
_MAX_PADDING = 1024


# ----------------------------------------------------------------------------------------------------
# Header values


def _parse_params(text: str) -> dict[str, str]:
    """``; a=1; b="x;y"; c='z'; type=application/json`` -> dict with lowercased keys; the first value wins."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in "; \t":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and text[j] not in "=;":
            j += 1
        key = text[i:j].strip().lower()
        if j >= n or text[j] == ";":
            if key:
                out.setdefault(key, "")
            i = j
            continue
        i = j + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] in "\"'":
            quote = text[i]
            i += 1
            chars: list[str] = []
            while i < n and text[i] != quote:
                # Backslash escapes exist only in RFC 822 quoted-strings, not in the single-quote quirk.
                if quote == '"' and text[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(text[i])
                i += 1
            value = "".join(chars)
            end = text.find(";", i)
            i = n if end < 0 else end
        else:
            # Unquoted: everything up to the next ';' — this is what lets ``type=application/json`` through.
            end = text.find(";", i)
            end = n if end < 0 else end
            value = text[i:end].strip()
            i = end
        if key:
            out.setdefault(key, value)
    return out


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """``multipart/related; boundary=x; type=application/json`` -> ``("multipart/related", {...})``.

    The mime type and the parameter names are lowercased; parameter values keep their case.
    """
    mime, _, rest = value.partition(";")
    return mime.strip().lower(), _parse_params(rest)


def boundary_from_content_type(value: str) -> str:
    """The boundary of a multipart Content-Type; MultipartError if it is not multipart or has no boundary."""
    mime, params = parse_content_type(value)
    if not mime.startswith("multipart/"):
        raise MultipartError(f"expected a multipart content type, got {mime!r}")
    boundary = params.get("boundary", "")
    if not boundary:
        raise MultipartError(f"multipart content type without a boundary: {value!r}")
    return boundary


@dataclass(frozen=True, slots=True)
class PartHeaders:
    """The headers of one part, in order, names as received."""

    items: tuple[tuple[str, str], ...] = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        wanted = name.lower()
        for key, value in self.items:
            if key.lower() == wanted:
                return value
        return default

    @property
    def content_type(self) -> str:
        """Lowercased mime type without parameters; ``""`` if there is no Content-Type."""
        value = self.get("content-type")
        return parse_content_type(value)[0] if value is not None else ""

    @property
    def content_id(self) -> str | None:
        """Content-ID without its angle brackets (RFC 2392), to match ``cid:`` URLs."""
        value = self.get("content-id")
        return normalize_content_id(value) if value is not None else None

    @property
    def name(self) -> str | None:
        """The form-data ``name`` from Content-Disposition (``name="x"``, ``name='x'`` or ``name=x``)."""
        value = self.get("content-disposition")
        if value is None:
            return None
        return _parse_params(value.partition(";")[2]).get("name")


# ----------------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class PartStart:
    headers: PartHeaders


@dataclass(frozen=True, slots=True)
class PartData:
    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    pass


@dataclass(frozen=True, slots=True)
class BodyEnd:
    """The closing delimiter was seen; anything after it is epilogue and ignored."""


PartEvent = PartStart | PartData | PartEnd | BodyEnd


class _State(Enum):
    PREAMBLE = auto()
    HEADERS = auto()
    BODY = auto()
    EPILOGUE = auto()


def _decode_header(raw: bytes | bytearray) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class MultipartParser:
    """Incremental multipart parser. :meth:`feed` bytes as they arrive; :meth:`finish` at end of input."""

    def __init__(
        self, boundary: str | bytes, *, max_header_bytes: int = 16384, max_preamble_bytes: int = 65536
    ) -> None:
        raw = boundary.encode("utf-8") if isinstance(boundary, str) else bytes(boundary)
        if not raw:
            raise MultipartError("empty multipart boundary")
        self._dash_boundary = b"--" + raw  # opens the first part (may sit at offset 0)
        self._delimiter = b"\r\n--" + raw  # opens every later part, and closes the body with "--"
        self._max_header_bytes = max_header_bytes
        self._max_preamble_bytes = max_preamble_bytes
        self._buf = bytearray()
        self._state = _State.PREAMBLE
        self._scan = 0  # where the next search in _buf starts (bytes before it were already examined)
        self._preamble_seen = 0  # preamble bytes dropped so far
        self._header_bytes = 0  # header bytes of the current part so far
        self._header_items: list[tuple[str, str]] = []
        self._finished = False
        self._error: str | None = None

    @property
    def complete(self) -> bool:
        """True once BodyEnd has been emitted."""
        return self._state is _State.EPILOGUE

    def feed(self, data: bytes) -> list[PartEvent]:
        """Parse more bytes; returns the events they complete. MultipartError on malformed input."""
        self._check_usable()
        if self._finished:
            self._fail("data fed after finish()")
        if self._state is _State.EPILOGUE or not data:
            return []
        self._buf += data
        events: list[PartEvent] = []
        try:
            self._run(events)
        except MultipartError as exc:
            self._error = str(exc)
            raise
        return events

    def finish(self) -> list[PartEvent]:
        """End of input. MultipartError unless the closing delimiter has been seen."""
        self._check_usable()
        self._finished = True
        if self._state is not _State.EPILOGUE:
            self._fail(f"body ended before the closing delimiter (in {self._state.name.lower()})")
        return []

    # -- internals -------------------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._error is not None:
            raise MultipartError(f"parser failed earlier: {self._error}")

    def _fail(self, message: str) -> None:
        self._error = message
        raise MultipartError(message)

    def _run(self, events: list[PartEvent]) -> None:
        while True:
            state = self._state
            if state is _State.BODY:
                progressed = self._body(events)
            elif state is _State.HEADERS:
                progressed = self._headers(events)
            elif state is _State.PREAMBLE:
                progressed = self._preamble(events)
            else:
                self._buf.clear()
                return
            if not progressed:
                return

    def _emit_data(self, events: list[PartEvent], end: int) -> None:
        """Emit _buf[:end] as PartData and drop it."""
        if end <= 0:
            return
        buf = self._buf
        with memoryview(buf) as view:
            chunk = bytes(view[:end])
        del buf[:end]
        events.append(PartData(chunk))

    def _line_end(self, start: int) -> int:
        """After a delimiter: skip transport padding, then expect CRLF or LF.

        Returns the index just past the line end, -1 if more bytes are needed; raises on anything else.
        """
        buf = self._buf
        n = len(buf)
        j = start
        while j < n and buf[j] in (_SP, _HT):
            j += 1
        if j - start > _MAX_PADDING:
            raise MultipartError("transport padding after a delimiter is too long")
        if j >= n:
            return -1
        c = buf[j]
        if c == _LF:
            return j + 1
        if c == _CR:
            if j + 1 >= n:
                return -1
            if buf[j + 1] == _LF:
                return j + 2
        raise MultipartError("delimiter followed by garbage")

    def _after_delimiter(self, k: int) -> int:
        """Classify the bytes after a boundary match ending at k.

        Returns -1: need more bytes; -2: not a delimiter (data); -3: closing delimiter; else the index where
        the part's headers start. Raises on a delimiter followed by garbage.
        """
        buf = self._buf
        n = len(buf)
        if k >= n:
            return -1
        c = buf[k]
        if c == _DASH:
            if k + 1 >= n:
                return -1
            if buf[k + 1] == _DASH:
                return -3
            raise MultipartError("delimiter followed by a single '-'")
        if c in (_SP, _HT, _CR, _LF):
            return self._line_end(k)
        return -2

    def _preamble(self, events: list[PartEvent]) -> bool:
        buf = self._buf
        marker = self._dash_boundary
        size = len(marker)
        while True:
            n = len(buf)
            i = buf.find(marker, self._scan)
            if i < 0:
                # Keep the last `size` bytes: a partial match plus the byte before it (line-start check).
                drop = max(0, n - size)
                earliest = self._preamble_seen + max(0, n - size + 1)
                if earliest > self._max_preamble_bytes:
                    raise MultipartError(f"no multipart delimiter within {self._max_preamble_bytes} bytes")
                del buf[:drop]
                self._preamble_seen += drop
                self._scan = max(0, n - size + 1 - drop)
                return False
            if self._preamble_seen + i > self._max_preamble_bytes:
                raise MultipartError(f"no multipart delimiter within {self._max_preamble_bytes} bytes")
            at_line_start = (i == 0 and self._preamble_seen == 0) or (i > 0 and buf[i - 1] == _LF)
            if not at_line_start:
                self._scan = i + 1
                continue
            verdict = self._after_delimiter(i + size)
            if verdict == -1:
                self._scan = i
                return False
            if verdict == -2:
                self._scan = i + 1
                continue
            if verdict == -3:
                events.append(BodyEnd())
                self._state = _State.EPILOGUE
                return True
            del buf[:verdict]
            self._start_headers()
            return True

    def _start_headers(self) -> None:
        self._state = _State.HEADERS
        self._scan = 0
        self._header_bytes = 0
        self._header_items = []

    def _headers(self, events: list[PartEvent]) -> bool:
        buf = self._buf
        while True:
            j = buf.find(b"\n", self._scan)
            if j < 0:
                if self._header_bytes + len(buf) > self._max_header_bytes:
                    raise MultipartError(f"part headers longer than {self._max_header_bytes} bytes")
                self._scan = len(buf)
                return False
            self._header_bytes += j + 1
            if self._header_bytes > self._max_header_bytes:
                raise MultipartError(f"part headers longer than {self._max_header_bytes} bytes")
            end = j - 1 if j > 0 and buf[j - 1] == _CR else j
            line = bytes(buf[:end])
            del buf[: j + 1]
            self._scan = 0
            if not line:
                events.append(PartStart(PartHeaders(tuple(self._header_items))))
                self._state = _State.BODY
                return True
            colon = line.find(b":")
            if colon <= 0 or line[0] in (_SP, _HT):
                raise MultipartError("malformed part header line")
            name = _decode_header(line[:colon]).strip()
            if not name or any(ch in name for ch in " \t"):
                raise MultipartError("malformed part header name")
            self._header_items.append((name, _decode_header(line[colon + 1 :]).strip()))

    def _body(self, events: list[PartEvent]) -> bool:
        buf = self._buf
        delim = self._delimiter
        size = len(delim)
        start = self._scan
        while True:
            n = len(buf)
            i = buf.find(delim, start)
            if i < 0:
                # Hold back only a tail that is a proper prefix of the delimiter.
                hold_at = n
                j = buf.find(b"\r", max(start, n - size + 1))
                while j >= 0:
                    if delim.startswith(buf[j:]):
                        hold_at = j
                        break
                    j = buf.find(b"\r", j + 1)
                self._emit_data(events, hold_at)
                self._scan = 0
                return False
            verdict = self._after_delimiter(i + size)
            if verdict == -2:
                start = i + 1
                continue
            self._emit_data(events, i)
            self._scan = 0
            if verdict == -1:
                return False
            events.append(PartEnd())
            if verdict == -3:
                events.append(BodyEnd())
                self._state = _State.EPILOGUE
                buf.clear()
                return False
            del buf[: verdict - i]
            self._start_headers()
            return True


# ----------------------------------------------------------------------------------------------------
# Writer


def new_boundary() -> str:
    """A fresh random boundary (hex only, so it is valid unquoted and cannot occur by accident)."""
    return f"avsd-{uuid.uuid4().hex}"


def _header_lines(headers: Sequence[tuple[str, str]]) -> bytes:
    out = bytearray()
    for name, value in headers:
        # The parser refuses names with whitespace or colons and values spanning lines; so does the writer.
        if not name or any(ch in name for ch in ": \t\r\n") or any(ch in value for ch in "\r\n"):
            raise ValueError(f"invalid multipart header {name!r}")
        out += f"{name}: {value}\r\n".encode()
    return bytes(out)


def part_header(boundary: str, headers: Sequence[tuple[str, str]], *, first: bool) -> bytes:
    """The delimiter and headers that open a part; the part's data follows directly.

    ``first``: ``--B\\r\\nName: v\\r\\n\\r\\n``; later parts start with the CRLF that ends the previous
    part's data. Equal to ``delimiter_line(B) + header_block(headers)`` for later parts.
    """
    if first:
        return b"--" + boundary.encode() + b"\r\n" + header_block(headers)
    return delimiter_line(boundary) + header_block(headers)


def delimiter_line(boundary: str) -> bytes:
    """``\\r\\n--B\\r\\n``: ends the previous part and announces another.

    A reader only knows a part is complete when the delimiter after it arrives. On a never-ending stream (the
    downchannel) write this right after a part's data and the part's ``header_block`` only when the next part
    exists, so the directive is delivered at once instead of when the next one comes.
    """
    return b"\r\n--" + boundary.encode() + b"\r\n"


def header_block(headers: Sequence[tuple[str, str]]) -> bytes:
    """``Name: v\\r\\n...\\r\\n``: a part's header lines and the blank line that ends them."""
    return _header_lines(headers) + b"\r\n"


def closing_delimiter(boundary: str) -> bytes:
    """``\\r\\n--B--\\r\\n``: ends the last part's data and the body."""
    return b"\r\n--" + boundary.encode() + b"--\r\n"


def _conflicts(data: bytes, boundary: bytes) -> bool:
    """True if ``data`` contains something the parser would read as a delimiter."""
    delim = b"\r\n--" + boundary
    i = data.find(delim)
    while i >= 0:
        k = i + len(delim)
        # At the very end the following bytes are our own delimiter's CRLF, so that counts as a conflict too.
        if k >= len(data) or data[k] in (_DASH, _SP, _HT, _CR, _LF):
            return True
        i = data.find(delim, i + 1)
    return False


def encode_parts(boundary: str, parts: Sequence[tuple[Sequence[tuple[str, str]], bytes]]) -> bytes:
    """A whole multipart body. ValueError if a part's data contains the delimiter."""
    raw_boundary = boundary.encode()
    if not parts:
        return b"--" + raw_boundary + b"--\r\n"
    out = bytearray()
    for index, (headers, data) in enumerate(parts):
        if _conflicts(data, raw_boundary):
            raise ValueError(f"part {index} contains the multipart boundary")
        out += part_header(boundary, headers, first=index == 0)
        out += data
    out += closing_delimiter(boundary)
    return bytes(out)
