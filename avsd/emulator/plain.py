"""The emulator's plain routes, the same over HTTP/1.1 and HTTP/2: LWA and media (whole request in, whole answer
out), and the answer AVS routes get over HTTP/1.1.

    POST /auth/o2/token, /auth/o2/create/codepair (any case of "o2")   LWA, form-encoded or JSON body
    GET  /ap/oa                                                         LWA authorization (302)
    GET|HEAD /media/...                                                 media.py
    any AVS route over HTTP/1.1                                         505, System.Exception "requires HTTP/2"
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl, urlsplit

from avsd.avs.messages import DIRECTIVES_PATH, EVENTS_PATH, PING_PATH, new_message_id
from avsd.emulator.h2conn import RequestStream, ServerConnection
from avsd.emulator.lwa import LwaReply, LwaServer, parse_lwa_body
from avsd.emulator.media import MEDIA_PREFIX, MediaLibrary
from avsd.emulator.replies import PlainRequest, PlainResponse, exception_response, plain_text

_log = logging.getLogger(__name__)

CAPABILITIES_PATH = "/v1/devices/@self/capabilities"
AVS_PATHS = frozenset({DIRECTIVES_PATH, EVENTS_PATH, PING_PATH, CAPABILITIES_PATH})
LWA_TOKEN_PATH = "/auth/o2/token"
LWA_CODEPAIR_PATH = "/auth/o2/create/codepair"
LWA_AUTHORIZE_PATH = "/ap/oa"
MAX_FORM_BYTES = 64 * 1024


def is_plain_route(method: str, path: str) -> bool:
    """LWA and media routes (answered by :class:`PlainRoutes` whatever the HTTP version)."""
    lowered = path.lower()
    return (
        (method == "POST" and lowered in (LWA_TOKEN_PATH, LWA_CODEPAIR_PATH))
        or (method == "GET" and path == LWA_AUTHORIZE_PATH)
        or path.startswith(MEDIA_PREFIX)
    )


def lwa_response(reply: LwaReply) -> PlainResponse:
    headers = [("cache-control", "no-store"), ("pragma", "no-cache")]
    if reply.location:
        headers.append(("location", reply.location))
    body = b""
    if reply.body is not None:
        body = json.dumps(reply.body).encode()
        headers.append(("content-type", "application/json;charset=UTF-8"))
    headers += [("content-length", str(len(body))), ("x-amzn-requestid", new_message_id())]
    return PlainResponse(reply.status, tuple(headers), body)


class PlainRoutes:
    def __init__(self, lwa: LwaServer, media: MediaLibrary) -> None:
        self.lwa = lwa
        self.media = media

    async def serve_h2(self, conn: ServerConnection, stream: RequestStream) -> int:
        """Answer a plain route on an HTTP/2 stream (the body read whole, bounded); returns the status sent."""
        body = await stream.read_all(MAX_FORM_BYTES) if stream.method == "POST" else b""
        if stream.method != "POST":
            stream.abandon()
        request = PlainRequest(stream.method, stream.path, stream.headers, body, "2", conn.id, stream.stream_id)
        response = await self.handle(request)
        end_now = not response.body and not response.stall
        await conn.send_headers(stream.stream_id, response.status, response.headers, end_stream=end_now)
        if response.body:
            await conn.send_data(stream.stream_id, response.body, end_stream=not response.stall)
        if response.stall:
            await stream.gone.wait()  # until the client resets the stream or leaves
        return response.status

    async def handle(self, request: PlainRequest) -> PlainResponse:
        parts = urlsplit(request.target)
        path, method = parts.path, request.method
        lowered = path.lower()
        if method == "POST" and lowered in (LWA_TOKEN_PATH, LWA_CODEPAIR_PATH):
            if request.body is None:
                return lwa_response(LwaReply(413, {"error": "invalid_request", "error_description": "too large"}))
            params = parse_lwa_body(request.headers.get("content-type", ""), request.body)
            if isinstance(params, LwaReply):
                _log.info("LWA %s over HTTP/%s: unreadable body", path, request.http_version)
                return lwa_response(params)
            reply = self.lwa.token(params) if lowered == LWA_TOKEN_PATH else self.lwa.create_codepair(params)
            return lwa_response(reply)
        if method == "GET" and path == LWA_AUTHORIZE_PATH:
            return lwa_response(self.lwa.authorize(dict(parse_qsl(parts.query))))
        if path.startswith(MEDIA_PREFIX):
            return self.media.respond(method, request.target, request.headers)
        if request.http_version != "2" and path in AVS_PATHS:
            # Amazon's AVS endpoint is HTTP/2 only (protocol reference §1.3); say so instead of a bare close.
            headers, body = exception_response(
                505, f"AVS requires HTTP/2 (TLS ALPN h2); this {method} {path} came over HTTP/1.1"
            )
            return PlainResponse(505, tuple(headers), body)
        return plain_text(404, f"no route {method} {path}")
