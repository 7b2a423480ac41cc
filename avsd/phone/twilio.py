"""Twilio: ``POST /twilio/voice`` answers TwiML ``<Connect><Stream>``; the Media Streams websocket carries the call.

Message shapes (``/work/shared/telephony.md`` §1): every frame is JSON text; ``connected`` first (no streamSid),
then ``start`` (``start.customParameters`` holds our ``<Parameter>``s), ``media`` (base64 mu-law 8 kHz), ``dtmf``,
``mark`` (the echo of ours), ``stop`` last. We send ``media`` (raw mu-law, no header), ``mark`` and ``clear``.

A stream is accepted when its upgrade request carries a valid ``X-Twilio-Signature`` (Twilio signs the ``wss://``
URL exactly as written in the TwiML, no params) or when ``start.customParameters.token`` is a one-time token from
our own TwiML. Anything else, and any malformed message, closes that call's socket; other calls go on.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from avsd.phone.bridge import PhoneBridge
from avsd.phone.call import Call
from avsd.phone.convert import ulaw_decode, ulaw_encode
from avsd.phone.ws import CLOSE_POLICY, WS_MAX_MESSAGE, CallSocket, StreamError
from avsd.web import twilio_signature_ok

_LOGGER = logging.getLogger(__name__)

STREAM_PATHS = ("/twilio/stream", "/convo")  # /convo: the seed's TwiML Bins point there


class TwilioTransport:
    rate = 8000

    def __init__(self, ws: web.WebSocketResponse, stream_sid: str) -> None:
        self._ws, self.stream_sid = ws, stream_sid

    def _json(self, message: dict[str, Any]) -> str:
        return json.dumps({**message, "streamSid": self.stream_sid}, separators=(",", ":"))

    async def _send(self, message: dict[str, Any]) -> None:
        await self.send([self._json(message)])

    def encode(self, pcm_frames: list[bytes]) -> list[str | bytes]:
        payload = base64.b64encode(ulaw_encode(b"".join(pcm_frames))).decode("ascii")
        return [self._json({"event": "media", "media": {"payload": payload}})]

    async def send(self, messages: list[str | bytes]) -> None:
        for message in messages:
            if self._ws.closed:
                return
            try:
                await self._ws.send_str(message if isinstance(message, str) else message.decode())
            except (ConnectionError, RuntimeError) as exc:  # the socket went away under us: the call is ending
                _LOGGER.debug("stream %s: send failed: %s", self.stream_sid, exc)
                return

    async def send_mark(self, name: str) -> bool:
        await self._send({"event": "mark", "mark": {"name": name}})
        return True

    async def clear(self) -> None:
        await self._send({"event": "clear"})

    async def close(self) -> None:
        await self._ws.close()


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StreamError(f"{what} is not an object")
    return value


def _string(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise StreamError(f"{what}.{key} is missing or not a string")
    return value


def twilio_routes(bridge: PhoneBridge) -> list[web.RouteDef]:
    async def voice(request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        url = bridge.public_origin(request) + request.path_qs
        signature = request.headers.get("X-Twilio-Signature")
        if not twilio_signature_ok(bridge.secrets.twilio_auth_token, url, params, signature):
            _LOGGER.warning("refused POST %s: missing or wrong X-Twilio-Signature", request.path)
            raise web.HTTPForbidden(text="bad signature\n")
        from twilio.twiml.voice_response import VoiceResponse

        caller = params.get("From") or "unknown"
        token = bridge.tokens.mint(caller)
        stream_url = wss_url(bridge.public_origin(request)) + STREAM_PATHS[0]
        response = VoiceResponse()
        stream = response.connect().stream(url=stream_url)
        stream.parameter(name="caller", value=caller)
        stream.parameter(name="token", value=token)
        _LOGGER.info("call %s: TwiML with a stream token", params.get("CallSid", "?"))
        return web.Response(text=str(response), content_type="text/xml")

    async def stream(request: web.Request) -> web.WebSocketResponse:
        signed_url = wss_url(bridge.public_origin(request)) + request.path
        signed = twilio_signature_ok(
            bridge.secrets.twilio_auth_token, signed_url, {}, request.headers.get("X-Twilio-Signature")
        )
        ws = web.WebSocketResponse(max_msg_size=WS_MAX_MESSAGE, autoping=True)
        await ws.prepare(request)
        await _serve_stream(bridge, ws, signed=signed)
        return ws

    return [web.post("/twilio/voice", voice), *(web.get(path, stream) for path in STREAM_PATHS)]


def wss_url(origin: str) -> str:
    if origin.startswith("https://"):
        return "wss://" + origin[len("https://") :]
    if origin.startswith("http://"):
        return "ws://" + origin[len("http://") :]
    return origin


async def _serve_stream(bridge: PhoneBridge, ws: web.WebSocketResponse, *, signed: bool) -> None:
    async with CallSocket(bridge, ws, "Twilio stream") as sock:
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                if message.type is WSMsgType.ERROR:
                    break
                raise StreamError("binary frame on a Twilio stream")
            try:
                data = _object(json.loads(message.data), "message")
            except json.JSONDecodeError as exc:
                raise StreamError(f"malformed JSON: {exc.msg}") from exc
            event = _string(data, "event", "message")
            if event == "connected":
                continue
            if event == "start":
                if sock.call is not None:
                    raise StreamError("a second start")
                sock.call = await _start(bridge, ws, data, signed=signed)
                if sock.call is None:
                    await ws.close(code=CLOSE_POLICY, message=b"no valid token")
                    return
                continue
            call = sock.call
            if call is None:
                raise StreamError(f"{event} before start")
            if data.get("streamSid") != call.call_id:
                raise StreamError("a message for an unknown stream")
            if event == "media":
                media = _object(data.get("media"), "media")
                try:
                    audio = base64.b64decode(_string(media, "payload", "media"), validate=True)
                except binascii.Error as exc:
                    raise StreamError("media.payload is not base64") from exc
                call.feed(ulaw_decode(audio))
            elif event == "dtmf":
                call.dtmf(_string(_object(data.get("dtmf"), "dtmf"), "digit", "dtmf"))
            elif event == "mark":
                call.mark(_string(_object(data.get("mark"), "mark"), "name", "mark"))
            elif event == "stop":
                _LOGGER.info("stream %s: stop", call.call_id)
                break
            else:
                _LOGGER.debug("stream %s: event %s ignored", call.call_id, event)


async def _start(bridge: PhoneBridge, ws: web.WebSocketResponse, data: dict[str, Any], *, signed: bool) -> Call | None:
    start = _object(data.get("start"), "start")
    stream_sid = _string(start, "streamSid", "start")
    if stream_sid in bridge.calls_by_id:
        raise StreamError("a second stream with a streamSid already in a call")
    params = start.get("customParameters")
    params = params if isinstance(params, dict) else {}
    caller = bridge.tokens.consume(params.get("token"))  # spent even when the upgrade was signed too
    if caller is None and not signed:
        _LOGGER.warning("stream %s refused: no valid one-time token and no valid signature", stream_sid)
        return None
    if caller is None:
        caller = str(params.get("caller") or start.get("callSid") or stream_sid)
    media_format = start.get("mediaFormat")
    if isinstance(media_format, dict) and (
        media_format.get("encoding", "audio/x-mulaw") != "audio/x-mulaw" or media_format.get("sampleRate", 8000) != 8000
    ):
        raise StreamError(f"unsupported media format {media_format}")
    return await bridge.open_call(caller, stream_sid, TwilioTransport(ws, stream_sid))
