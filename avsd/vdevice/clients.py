"""Clients of a virtual device for ``avsd test``: over HTTP (any server with Bespoken's API: avsd's own, or
Bespoken's) or in-process (the same MessageProcessor that ``avsd vdevice`` serves, without the HTTP hop)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiohttp

from avsd.vdevice.processor import Message, MessageError, MessageProcessor, Options


class VirtualDeviceHttpError(Exception):
    """The server refused a message; the text is its body, as the SDK would reject with it."""


class HttpVirtualDevice:
    def __init__(self, base_url: str, token: str, *, voice_id: str | None = None, timeout_s: float = 120.0) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._voice_id = voice_id
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._new = True

    async def new_conversation(self) -> None:
        self._new = True

    async def message(self, text: str, phrases: Sequence[str]) -> dict[str, Any]:
        params: list[tuple[str, str]] = [("message", text), ("user_id", self._token)]
        params += [("phrases", p) for p in phrases]
        if self._voice_id:
            params.append(("voice_id", self._voice_id))
        if self._new:
            params.append(("new_conversation", "true"))
        async with aiohttp.ClientSession(timeout=self._timeout) as http, http.get(
            self._base + "/process", params=params
        ) as reply:
            body = await reply.text()
            if reply.status != 200:
                raise VirtualDeviceHttpError(body)
        self._new = False
        result: dict[str, Any] = json.loads(body)
        return result


class LocalVirtualDevice:
    def __init__(self, processor: MessageProcessor, identity: str, options: Options) -> None:
        self._processor = processor
        self._identity = identity
        self._options = options

    async def new_conversation(self) -> None:
        await self._processor.new_conversation(self._identity)

    async def message(self, text: str, phrases: Sequence[str]) -> dict[str, Any]:
        try:
            return await self._processor.process(self._identity, Message(text=text, phrases=phrases), self._options)
        except MessageError as exc:
            raise VirtualDeviceHttpError(str(exc.body)) from exc
