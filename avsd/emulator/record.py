"""The emulator's request record: one :class:`RecordedRequest` per HTTP/2 request, in arrival order.

Tokens never reach the record: ``authorization`` is stored as ``Bearer <redacted>``. LWA form bodies are not
recorded at all (they carry refresh tokens and client secrets).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

_log = logging.getLogger(__name__)

REDACTED_AUTH = "Bearer <redacted>"
_SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "x-amz-access-token"})


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        k: (REDACTED_AUTH if k == "authorization" else "<redacted>") if k in _SENSITIVE_HEADERS else v
        for k, v in headers.items()
    }


# How many requests a long-running local server remembers (``Emulator(kept_records=...)``): the offline assistant
# inside ``avsd run``, and ``avsd vdevice`` / ``avsd phone`` / ``avsd emulator``. Each Recognize record holds its
# audio (32 KB a second), so a server that kept them all grew by megabytes a day. Tests and the demo read every
# request of their short runs and keep them all (None, the default).
SERVICE_KEPT_RECORDS = 100


@dataclass(eq=False, slots=True)
class RecordedRequest:
    """One request as the emulator saw it. Mutable: it fills in while the request streams and is answered."""

    time: float
    connection_id: int
    stream_id: int
    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None
    event: dict[str, Any] | None = None
    qualified_name: str | None = None
    # ``audio`` is always 16 kHz PCM: an OPUS upload is decoded into it, its bytes as sent kept in
    # ``encoded_audio``; ``audio_chunks`` is (arrival time, bytes) of the upload as it arrived (encoded for OPUS).
    audio: bytearray = field(default_factory=bytearray)
    audio_chunks: list[tuple[float, int]] = field(default_factory=list)
    audio_format: str | None = None  # the Recognize payload's ``format``
    encoded_audio: bytearray = field(default_factory=bytearray)
    opus_packet_bytes: int | None = None  # 80 or 160 once an OPUS upload's packet size is known
    body: bytes = b""
    body_complete: asyncio.Event = field(default_factory=asyncio.Event)
    fault: str | None = None
    http_version: str = "2"

    def add_audio(self, now: float, data: bytes) -> None:
        if data:
            self.audio += data
            self.audio_chunks.append((now, len(data)))

    def add_encoded_audio(self, now: float, data: bytes, pcm: bytes) -> None:
        """A chunk of an encoded upload as it arrived, and the PCM it completed (may be empty)."""
        if data:
            self.encoded_audio += data
            self.audio_chunks.append((now, len(data)))
        self.audio += pcm

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "connection_id": self.connection_id,
            "stream_id": self.stream_id,
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "status": self.status,
            "qualified_name": self.qualified_name,
            "event": self.event,
            "body": self.body.decode("utf-8", errors="replace") if self.body else None,
            "audio_length": len(self.audio),
            "audio_chunks": len(self.audio_chunks),
            "audio_b64": base64.b64encode(bytes(self.audio)).decode() if self.audio else None,
            "audio_format": self.audio_format,
            "encoded_audio_length": len(self.encoded_audio),
            "opus_packet_bytes": self.opus_packet_bytes,
            "fault": self.fault,
        }


class RecordWriter:
    """Appends one JSON line per finished request to a file (``--record FILE``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")

    def write(self, record: RecordedRequest) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(record.to_json_obj(), separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
