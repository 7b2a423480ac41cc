"""Vonage: ``/vonage/answer`` returns an NCCO that connects the call to ``/vonage/socket``.

Protocol (Vonage Voice API websockets guide): the NCCO's ``connect`` action has a ``websocket`` endpoint with
``content-type`` ``audio/l16;rate=16000`` (or 8000) and ``headers`` (max 512 bytes) that Vonage copies to the top
level of the socket's first message, ``{"event":"websocket:connected","content-type":...,<headers>}``. After that,
binary messages are 20 ms of 16-bit PCM (640 bytes at 16 kHz, 320 at 8 kHz) and text messages are JSON events,
e.g. ``{"event":"websocket:dtmf","digit":"5","duration":260}``. Replies go back as binary frames of the same size;
Vonage buffers at most 1024 of them, so they are paced at real time.

Webhooks (answer, event) are verified when a signature secret is configured: ``Authorization: Bearer <JWT>``
signed HS256 with the secret, ``payload_hash`` = SHA-256 of the body. The socket itself must present, in its
first message, the one-time token our NCCO put in the headers.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from avsd.phone.bridge import PhoneBridge
from avsd.phone.call import Call
from avsd.phone.twilio import wss_url
from avsd.phone.ws import CLOSE_POLICY, WS_MAX_MESSAGE, CallSocket, StreamError
from avsd.web import hs256_claims

_LOGGER = logging.getLogger(__name__)

SOCKET_PATH = "/vonage/socket"
RATES = {"audio/l16;rate=16000": 16000, "audio/l16;rate=8000": 8000}


class VonageTransport:
    def __init__(self, ws: web.WebSocketResponse, rate: int) -> None:
        self._ws, self.rate = ws, rate

    def encode(self, pcm_frames: list[bytes]) -> list[str | bytes]:
        return list(pcm_frames)  # one 20 ms frame per message: Vonage refuses other sizes

    async def send(self, messages: list[str | bytes]) -> None:
        for message in messages:
            if self._ws.closed:
                return
            try:
                await self._ws.send_bytes(message if isinstance(message, bytes) else message.encode())
            except (ConnectionError, RuntimeError) as exc:
                _LOGGER.debug("vonage socket: send failed: %s", exc)
                return

    async def send_mark(self, name: str) -> bool:
        return False  # no marks on Vonage: the call waits out the lead instead

    async def clear(self) -> None:
        return None  # nothing to clear: at most the lead (100 ms) is buffered on Vonage's side

    async def close(self) -> None:
        await self._ws.close()


def vonage_routes(bridge: PhoneBridge) -> list[web.RouteDef]:
    async def verified(request: web.Request) -> bytes:
        body = await request.read()
        secret = bridge.secrets.vonage_signature_secret
        if secret:
            if hs256_claims(secret, request.headers.get("Authorization"), body) is None:
                _LOGGER.warning("refused %s %s: missing or bad signature", request.method, request.path)
                raise web.HTTPForbidden(text="bad signature\n")
        elif not bridge.settings.vonage_unsigned:
            _LOGGER.warning("refused %s %s: no phone.vonage_signature_secret configured", request.method, request.path)
            raise web.HTTPForbidden(text="webhooks not configured\n")
        return body

    def fields(request: web.Request, body: bytes) -> dict[str, Any]:
        if request.method == "POST" and body:
            try:
                data = json.loads(body)
            except json.JSONDecodeError as exc:
                raise web.HTTPBadRequest(text="malformed JSON\n") from exc
            if not isinstance(data, dict):
                raise web.HTTPBadRequest(text="expected a JSON object\n")
            return data
        return dict(request.query)

    async def answer(request: web.Request) -> web.Response:
        data = fields(request, await verified(request))
        caller = str(data.get("from") or "unknown")
        token = bridge.tokens.mint(caller)
        origin = bridge.public_origin(request)
        content_type = f"audio/l16;rate={bridge.settings.vonage_rate}"
        ncco = [
            {
                "action": "connect",
                "eventUrl": [origin + "/vonage/event"],
                "endpoint": [
                    {
                        "type": "websocket",
                        "uri": wss_url(origin) + SOCKET_PATH,
                        "content-type": content_type,
                        "headers": {"caller": caller, "uuid": str(data.get("uuid", "")), "token": token},
                    }
                ],
            }
        ]
        _LOGGER.info("call %s: NCCO with a socket token", data.get("uuid", "?"))
        return web.json_response(ncco)

    async def event(request: web.Request) -> web.Response:
        data = fields(request, await verified(request))
        _LOGGER.info("vonage event: call %s %s", data.get("uuid", "?"), data.get("status", data.get("event", "?")))
        return web.Response(status=204)

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=WS_MAX_MESSAGE, autoping=True)
        await ws.prepare(request)
        await _serve_socket(bridge, ws)
        return ws

    return [
        web.get("/vonage/answer", answer),
        web.post("/vonage/answer", answer),
        web.post("/vonage/event", event),
        web.get(SOCKET_PATH, socket),
    ]


async def _first_message(bridge: PhoneBridge, ws: web.WebSocketResponse) -> Call | None:
    message = await ws.receive()
    if message.type is not WSMsgType.TEXT:
        raise StreamError("the first message is not the websocket:connected text message")
    try:
        data = json.loads(message.data)
    except json.JSONDecodeError as exc:
        raise StreamError(f"malformed JSON: {exc.msg}") from exc
    if not isinstance(data, dict) or data.get("event") != "websocket:connected":
        raise StreamError("the first message is not websocket:connected")
    caller = bridge.tokens.consume(data.get("token"))
    if caller is None:
        _LOGGER.warning("vonage socket refused: no valid one-time token")
        return None
    rate = RATES.get(str(data.get("content-type", "")).replace(" ", "").lower())
    if rate is None:
        raise StreamError("unsupported content-type")
    call_id = str(data.get("uuid") or f"vonage-{id(ws):x}")
    if call_id in bridge.calls_by_id:
        raise StreamError("a second socket for the same call")
    return await bridge.open_call(caller, call_id, VonageTransport(ws, rate))


async def _serve_socket(bridge: PhoneBridge, ws: web.WebSocketResponse) -> None:
    async with CallSocket(bridge, ws, "Vonage socket") as sock:
        sock.call = call = await _first_message(bridge, ws)
        if call is None:
            await ws.close(code=CLOSE_POLICY, message=b"no valid token")
            return
        frame_bytes = call.transport.rate // 50 * 2
        async for message in ws:
            if message.type is WSMsgType.BINARY:
                if len(message.data) != frame_bytes:
                    raise StreamError(f"a {len(message.data)}-byte audio frame (expected {frame_bytes})")
                call.feed(message.data)
            elif message.type is WSMsgType.TEXT:
                try:
                    data = json.loads(message.data)
                except json.JSONDecodeError as exc:
                    raise StreamError(f"malformed JSON: {exc.msg}") from exc
                if not isinstance(data, dict):
                    raise StreamError("a text message that is not a JSON object")
                if data.get("event") == "websocket:dtmf":
                    digit = data.get("digit")
                    if not isinstance(digit, str):
                        raise StreamError("websocket:dtmf without a digit")
                    call.dtmf(digit)
                else:
                    _LOGGER.debug("vonage socket %s: event %s", call.call_id, data.get("event"))
            elif message.type is WSMsgType.ERROR:
                break
