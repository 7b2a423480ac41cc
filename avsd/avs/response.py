"""Turns a multipart/related body (the downchannel or an event's answer) into directives and attachments.

JSON parts become :class:`Directive` objects handed on as soon as each part is complete; binary parts with a
Content-ID are written into the :class:`AttachmentStore` chunk by chunk, so a player can start before the part
ends (§4.4; the SDK's MimeResponseSink rules). Other parts are ignored. Sans-IO: bytes in, callbacks out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from avsd.avs.attachments import Attachment, AttachmentStore
from avsd.avs.messages import Directive, parse_directive
from avsd.avs.multipart import BodyEnd, MultipartParser, PartData, PartEnd, PartStart
from avsd.errors import DirectiveParseError, MultipartError

_LOGGER = logging.getLogger(__name__)

MAX_JSON_PART = 1 << 20  # a directive larger than 1 MiB is not a directive


class DirectiveStreamReader:
    def __init__(
        self,
        boundary: str,
        attachments: AttachmentStore,
        on_directive: Callable[[Directive], None],
        on_bad_directive: Callable[[str, str], None],
    ) -> None:
        self._parser = MultipartParser(boundary)
        self._attachments = attachments
        self._on_directive = on_directive
        self._on_bad_directive = on_bad_directive
        self._json: bytearray | None = None
        self._attachment: Attachment | None = None

    def feed(self, data: bytes) -> None:
        try:
            events = self._parser.feed(data)
        except MultipartError as exc:
            self._abort(exc)
            raise
        self._handle(events)

    def finish(self) -> None:
        try:
            events = self._parser.finish()
        except MultipartError as exc:
            self._abort(exc)
            raise
        self._handle(events)

    def _abort(self, exc: Exception) -> None:
        if self._attachment is not None:
            self._attachment.fail(exc)
            self._attachment = None

    def _handle(self, events: list[PartStart | PartData | PartEnd | BodyEnd]) -> None:
        for event in events:
            if isinstance(event, PartData):
                if self._json is not None:
                    if len(self._json) + len(event.data) > MAX_JSON_PART:
                        raise MultipartError("JSON part larger than 1 MiB")
                    self._json += event.data
                elif self._attachment is not None:
                    self._attachment.feed(event.data)
            elif isinstance(event, PartStart):
                content_type = event.headers.content_type
                content_id = event.headers.content_id
                if "json" in content_type:
                    self._json = bytearray()
                elif content_id:
                    # application/octet-stream per the spec; any typed part with a Content-ID is audio to us.
                    self._attachment = self._attachments.open(content_id)
                else:
                    _LOGGER.debug("ignoring part of type %r", content_type)
            elif isinstance(event, PartEnd):
                if self._json is not None:
                    raw = bytes(self._json)
                    self._json = None
                    self._emit_directive(raw)
                elif self._attachment is not None:
                    self._attachment.finish()
                    self._attachment = None

    def _emit_directive(self, raw: bytes) -> None:
        try:
            directive = parse_directive(raw)
        except DirectiveParseError as exc:
            self._on_bad_directive(str(exc), exc.raw)
            return
        self._on_directive(directive)
