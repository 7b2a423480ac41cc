"""``avsd phone-sim twilio|vonage URL --input WAV [--out WAV]``: call the bridge the way Twilio or Vonage would.

Message for message as the providers send them (``/work/shared/telephony.md``; Vonage's websockets guide): the
signed webhook first, then the websocket the answer names, caller audio paced at real time in 20 ms frames, and
a simulated far end that plays what comes back at real time, echoes Twilio marks when the audio before them has
played and drops its buffer on ``clear``. Records the timeline, the reply audio and the latencies.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np

from avsd.errors import AvsdError
from avsd.phone.convert import resample, ulaw_decode, ulaw_encode
from avsd.web import hs256_token, twilio_sign

FRAME_S = 0.020
QUIET_FRAMES = 15  # 300 ms below the level: the caller has stopped (for the timeline)
SPEECH_LEVEL_DB = 40.0  # a frame louder than this (dB re 1 LSB RMS) counts as the caller speaking


@dataclass(slots=True)
class SimResult:
    rate: int
    timeline: list[tuple[float, str]] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)  # reply audio, 16-bit PCM at ``rate``
    media_times: list[float] = field(default_factory=list)  # arrival time of every outbound media message
    last_loud: float | None = None  # when the caller's latest loud frame ended (sender side)
    turns: list[tuple[float, float]] = field(default_factory=list)  # (caller's speech end, first reply audio)
    marks: list[str] = field(default_factory=list)
    underruns: int = 0  # the far end's playout buffer ran dry inside a reply
    timed_out: bool = False
    closed_by_bridge: bool = False
    close_code: int | None = None

    def latencies(self) -> list[float]:
        return [first - end for end, first in self.turns]

    def reply_intervals(self, gap_s: float = 0.5) -> list[list[float]]:
        """Intervals between media messages, per reply (a silence longer than ``gap_s`` starts a new reply)."""
        replies: list[list[float]] = []
        for previous, current in zip(self.media_times, self.media_times[1:], strict=False):
            interval = current - previous
            if interval > gap_s or not replies:
                replies.append([])
                if interval > gap_s:
                    continue
            replies[-1].append(interval)
        return replies


def _level_db(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(10 * np.log10(np.mean(x * x) + 1.0)) if len(x) else 0.0


class _FarEnd:
    """The provider's playout buffer: audio plays at real time; marks fire when what precedes them has played."""

    def __init__(self, on_mark: Callable[[str], None], result: SimResult) -> None:
        self._end = 0.0
        self._result = result
        self._on_mark = on_mark
        self._pending: dict[str, asyncio.TimerHandle] = {}

    def audio(self, seconds: float) -> None:
        now = time.monotonic()
        if 0.0 < now - self._end < 0.5:  # audio arrived after the buffer ran dry, but within the same reply
            self._result.underruns += 1
        self._end = max(self._end, now) + seconds

    def mark(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._end - time.monotonic())
        self._pending[name] = loop.call_later(delay, self._fire, name)

    def _fire(self, name: str) -> None:
        self._pending.pop(name, None)
        self._on_mark(name)

    def clear(self) -> None:
        self._end = time.monotonic()
        for name, handle in list(self._pending.items()):  # clear echoes every pending mark at once
            handle.cancel()
            self._fire(name)

    @property
    def playing(self) -> bool:
        return self._end > time.monotonic()


async def simulate(
    provider: str,
    url: str,
    pcm16k: bytes,
    *,
    caller: str = "+15550100",
    public_url: str = "",
    twilio_auth_token: str = "",
    vonage_secret: str = "",
    dtmf: str = "",
    idle_s: float = 2.0,
    min_replies: int = 1,
    timeout_s: float = 60.0,
    stream_token: str | None = None,
    mutate: Callable[[dict[str, Any]], dict[str, Any] | str | bytes | None] | None = None,
) -> SimResult:
    """One simulated call. ``mutate`` (tests) may rewrite or replace each outbound message."""
    base = url.rstrip("/")
    public = (public_url or base).rstrip("/")
    async with aiohttp.ClientSession() as http:
        if provider == "twilio":
            return await _twilio(http, base, public, pcm16k, caller, twilio_auth_token, dtmf, idle_s, min_replies,
                                 timeout_s, stream_token, mutate)
        if provider == "vonage":
            return await _vonage(http, base, public, pcm16k, caller, vonage_secret, dtmf, idle_s, min_replies,
                                 timeout_s, stream_token, mutate)
    raise AvsdError(f"unknown provider {provider!r} (twilio or vonage)")


def _local(base: str, ws_url: str) -> str:
    """The bridge's websocket URL as reached from here: our base URL's origin, the answer's path."""
    origin = urlsplit(base)
    scheme = "wss" if origin.scheme == "https" else "ws"
    return f"{scheme}://{origin.netloc}{urlsplit(ws_url).path}"


async def _twilio(http: aiohttp.ClientSession, base: str, public: str, pcm16k: bytes, caller: str, token: str,
                  dtmf: str, idle_s: float, min_replies: int, timeout_s: float, stream_token: str | None,
                  mutate: Callable[[dict[str, Any]], dict[str, Any] | str | bytes | None] | None) -> SimResult:
    call_sid, account = "CA" + uuid.uuid4().hex, "AC" + uuid.uuid4().hex
    params = {"CallSid": call_sid, "AccountSid": account, "From": caller, "To": "+15550199",
              "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}
    headers = {"X-Twilio-Signature": twilio_sign(token, public + "/twilio/voice", params)} if token else {}
    async with http.post(base + "/twilio/voice", data=params, headers=headers) as response:
        if response.status != 200:
            raise AvsdError(f"POST /twilio/voice answered {response.status}")
        twiml = await response.text()
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    if stream is None:
        raise AvsdError("the TwiML has no <Connect><Stream>")
    ws_url = stream.get("url", "")
    custom = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    if stream_token is not None:
        custom["token"] = stream_token
    result = SimResult(rate=8000)
    started = time.monotonic()
    stream_sid = "MZ" + uuid.uuid4().hex
    seq = 0
    line = resample(pcm16k, 16000, 8000)
    async with http.ws_connect(_local(base, ws_url)) as ws:
        async def send(message: dict[str, Any]) -> None:
            nonlocal seq
            seq += 1
            message = {"sequenceNumber": str(seq), **message}
            if message.get("event") != "connected":
                message["streamSid"] = stream_sid
            out: dict[str, Any] | str | bytes | None = mutate(message) if mutate else message
            if isinstance(out, dict):
                await ws.send_str(json.dumps(out))
            elif isinstance(out, str):
                await ws.send_str(out)
            elif isinstance(out, bytes):
                await ws.send_bytes(out)

        echoes: set[asyncio.Future[None]] = set()

        async def echo(name: str) -> None:
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):  # the call may have ended meanwhile
                await send({"event": "mark", "mark": {"name": name}})

        def on_mark(name: str) -> None:
            result.marks.append(name)
            result.timeline.append((time.monotonic() - started, f"-> mark {name} (played)"))
            if not ws.closed:
                task = asyncio.ensure_future(echo(name))
                echoes.add(task)
                task.add_done_callback(echoes.discard)

        far = _FarEnd(on_mark, result)

        def on_message(data: dict[str, Any]) -> None:
            event = data.get("event")
            if event == "media":
                audio = base64.b64decode(data["media"]["payload"])
                pcm = ulaw_decode(audio)
                _received(result, started, pcm, len(audio) / 8000)
                far.audio(len(audio) / 8000)
            elif event == "mark":
                result.timeline.append((time.monotonic() - started, f"<- mark {data['mark']['name']}"))
                far.mark(data["mark"]["name"])
            elif event == "clear":
                result.timeline.append((time.monotonic() - started, "<- clear"))
                far.clear()

        await send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await send({"event": "start", "start": {
            "streamSid": stream_sid, "accountSid": account, "callSid": call_sid, "tracks": ["inbound"],
            "customParameters": custom,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
        result.timeline.append((time.monotonic() - started, "-> connected, start"))
        chunk = [0]

        async def send_frame(frame: bytes, at_ms: int) -> None:
            chunk[0] += 1
            await send({"event": "media", "media": {"track": "inbound", "chunk": str(chunk[0]),
                                                    "timestamp": str(at_ms),
                                                    "payload": base64.b64encode(ulaw_encode(frame)).decode()}})

        async def send_dtmf(digit: str) -> None:
            await send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}})

        await _converse(ws, result, started, line, 320, send_frame, send_dtmf, dtmf, far, on_message, idle_s,
                        min_replies, timeout_s, text=True)
        if not ws.closed:
            await send({"event": "stop", "stop": {"accountSid": account, "callSid": call_sid}})
            result.timeline.append((time.monotonic() - started, "-> stop"))
    return result


async def _vonage(http: aiohttp.ClientSession, base: str, public: str, pcm16k: bytes, caller: str, secret: str,
                  dtmf: str, idle_s: float, min_replies: int, timeout_s: float, stream_token: str | None,
                  mutate: Callable[[dict[str, Any]], dict[str, Any] | str | bytes | None] | None) -> SimResult:
    call_uuid = str(uuid.uuid4())
    query = {"from": caller, "to": "15550199", "uuid": call_uuid, "conversation_uuid": "CON-" + call_uuid}
    headers = {"Authorization": "Bearer " + hs256_token(secret, b"", application_id="sim")} if secret else {}
    async with http.get(base + "/vonage/answer", params=query, headers=headers) as response:
        if response.status != 200:
            raise AvsdError(f"GET /vonage/answer answered {response.status}")
        ncco = await response.json()
    endpoint = ncco[0]["endpoint"][0]
    rate = 16000 if endpoint["content-type"].endswith("16000") else 8000
    first = {"event": "websocket:connected", "content-type": endpoint["content-type"], **endpoint["headers"]}
    if stream_token is not None:
        first["token"] = stream_token
    result = SimResult(rate=rate)
    started = time.monotonic()
    line = resample(pcm16k, 16000, rate)
    frame_bytes = rate // 50 * 2
    async with http.ws_connect(_local(base, endpoint["uri"])) as ws:
        out = mutate(first) if mutate else first
        if isinstance(out, dict):
            await ws.send_str(json.dumps(out))
        elif isinstance(out, str | bytes):
            await (ws.send_str(out) if isinstance(out, str) else ws.send_bytes(out))
        result.timeline.append((time.monotonic() - started, "-> websocket:connected"))
        far = _FarEnd(lambda name: None, result)

        def on_message(data: dict[str, Any]) -> None:
            return None

        async def send_frame(frame: bytes, _at_ms: int) -> None:
            replaced = mutate({"binary": frame}) if mutate else None
            await ws.send_bytes(replaced if isinstance(replaced, bytes) else frame)

        async def send_dtmf(digit: str) -> None:
            await ws.send_str(json.dumps({"event": "websocket:dtmf", "digit": digit, "duration": 260}))

        def on_binary(pcm: bytes) -> None:
            _received(result, started, pcm, len(pcm) / 2 / rate)
            far.audio(len(pcm) / 2 / rate)

        await _converse(ws, result, started, line, frame_bytes, send_frame, send_dtmf, dtmf, far, on_message,
                        idle_s, min_replies, timeout_s, text=False, on_binary=on_binary)
    # Vonage reports the end of the call on the event URL, signed like every webhook.
    body = json.dumps({"uuid": call_uuid, "conversation_uuid": "CON-" + call_uuid, "status": "completed",
                       "from": caller, "to": "15550199", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z")})
    auth = {"Authorization": "Bearer " + hs256_token(secret, body.encode())} if secret else {}
    async with http.post(base + "/vonage/event", data=body.encode(),
                         headers={"Content-Type": "application/json", **auth}) as response:
        result.timeline.append((time.monotonic() - started, f"-> event completed ({response.status})"))
    return result


def _received(result: SimResult, started: float, pcm: bytes, seconds: float) -> None:
    now = time.monotonic()
    if result.last_loud is not None and (not result.media_times or now - result.media_times[-1] > 0.5):
        result.turns.append((result.last_loud, now))
        result.timeline.append((now - started, f"<- first reply audio ({now - result.last_loud:.3f} s "
                                               f"after the caller stopped)"))
    result.media_times.append(now)
    result.received += pcm


async def _converse(ws: aiohttp.ClientWebSocketResponse, result: SimResult, started: float, line: bytes,
                    frame_bytes: int, send_frame: Any, send_dtmf: Any, dtmf: str, far: _FarEnd,
                    on_message: Callable[[dict[str, Any]], None], idle_s: float, min_replies: int, timeout_s: float,
                    *, text: bool,
                    on_binary: Callable[[bytes], None] | None = None) -> None:
    async def receive() -> None:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT and text:
                on_message(json.loads(message.data))
            elif message.type is aiohttp.WSMsgType.BINARY and on_binary is not None:
                on_binary(message.data)
        result.closed_by_bridge = True
        result.close_code = ws.close_code
        result.timeline.append((time.monotonic() - started, f"<- socket closed ({ws.close_code})"))

    receiver = asyncio.create_task(receive())
    silence = bytes(frame_bytes)
    quiet_frames = QUIET_FRAMES
    index = 0
    start = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            # The caller's audio, then silence (a phone line never stops sending) until the bridge is quiet.
            last_audio = start
            while not receiver.done():
                offset = index * frame_bytes
                frame = line[offset : offset + frame_bytes] if offset < len(line) else silence
                frame = frame.ljust(frame_bytes, b"\x00")
                loud = _level_db(frame) > SPEECH_LEVEL_DB
                now = time.monotonic()
                if loud:
                    if quiet_frames >= QUIET_FRAMES:
                        result.timeline.append((now - started, "-> caller speaks"))
                    quiet_frames = 0
                    result.last_loud = now + FRAME_S  # the frame ends 20 ms after it is sent
                else:
                    quiet_frames += 1
                    if quiet_frames == QUIET_FRAMES and result.last_loud is not None:
                        result.timeline.append((result.last_loud - started, "-> caller stops"))
                try:
                    await send_frame(frame, index * 20)
                except (ConnectionError, aiohttp.ClientError):  # the bridge closed the call under us
                    await asyncio.wait_for(asyncio.shield(receiver), 5)
                    break
                index += 1
                if result.media_times:
                    last_audio = max(last_audio, result.media_times[-1])
                if dtmf and result.media_times and far.playing:  # keys pressed while the reply plays
                    for digit in dtmf:
                        await send_dtmf(digit)
                        result.timeline.append((time.monotonic() - started, f"-> dtmf {digit}"))
                    dtmf = ""
                if offset >= len(line):
                    quiet_since = max(last_audio, start + len(line) / frame_bytes * FRAME_S)
                    if now - quiet_since > idle_s and not far.playing and len(result.turns) >= min_replies:
                        break
                delay = start + index * FRAME_S - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
    except TimeoutError:
        result.timed_out = True
        result.timeline.append((time.monotonic() - started, f"-- nothing more within {timeout_s:.0f} s: hanging up"))
    finally:
        if receiver.done() and not receiver.cancelled() and receiver.exception() is not None:
            raise AvsdError(f"the bridge's socket broke: {receiver.exception()}")
        if not receiver.done():
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
