"""Headless sessions for the virtual device: one per token (device identity), opened on first use.

A device answers one utterance at a time, so asks on one identity are serialised; different identities run
concurrently (each its own HTTP/2 connection, as each is its own device to AVS). A reply that expects speech
makes the next message on that identity its answer (same dialogRequestId, the ExpectSpeech initiator echoed),
which is how a multi-turn skill test proceeds; ``reset`` forgets it (a new conversation).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from avsd.session import DistanceProfile, HeadlessSession, Reply
from avsd.speech.convert import decode_mp3
from avsd.vdevice.processor import DeviceReply

_log = logging.getLogger(__name__)

SessionOpener = Callable[[str], Awaitable[HeadlessSession]]


@dataclass(slots=True)
class _Device:
    session: HeadlessSession | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    expecting: str | None = None  # dialogRequestId of a reply that expects speech


class HeadlessSessions:
    def __init__(self, open_session: SessionOpener, *, ask_timeout_s: float = 30.0) -> None:
        self._open = open_session
        self._devices: dict[str, _Device] = {}
        self._ask_timeout_s = ask_timeout_s

    async def ask(self, identity: str, pcm16k: bytes) -> DeviceReply:
        device = self._devices.setdefault(identity, _Device())
        async with device.lock:
            if device.session is None:
                device.session = await self._open(identity)
                await device.session.connect()
            started = time.monotonic()
            reply = await device.session.ask(
                pcm16k, dialog_request_id=device.expecting, profile=DistanceProfile.CLOSE_TALK,
                timeout=self._ask_timeout_s,
            )
            device.expecting = reply.dialog_request_id if reply.expects_speech else None
            return await asyncio.to_thread(device_reply, reply, time.monotonic() - started)

    async def reset(self, identity: str) -> None:
        device = self._devices.get(identity)
        if device is not None:
            async with device.lock:
                device.expecting = None

    async def close(self) -> None:
        for device in self._devices.values():
            if device.session is not None:
                await device.session.close()
        self._devices.clear()


def device_reply(reply: Reply, elapsed_s: float) -> DeviceReply:
    speech = [d.audio_attachment for d in reply.directives if d.name == "Speak" and d.audio_attachment]
    pcm = b"".join(decode_mp3(mp3, 16000).data for mp3 in speech)
    return DeviceReply([d.directive for d in reply.directives], speech, pcm, elapsed_s)
