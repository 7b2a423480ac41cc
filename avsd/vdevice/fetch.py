"""``audio_url`` fetches without SSRF: http(s) only, a size cap, a time cap, and no loopback/private targets.

Every address a name resolves to is checked (not only the first), for the first request and for every redirect
hop, because the check runs inside the connector's resolver: a redirect to ``http://127.0.0.1/`` or a DNS answer
that points inside the network fails the same way. ``allow_private`` opens that up for a lab that serves its
test audio from the LAN (and for tests on loopback).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

_log = logging.getLogger(__name__)


class FetchError(Exception):
    """The URL was refused or could not be fetched within the limits."""


class _CheckingResolver(AbstractResolver):
    def __init__(self, allow_private: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                address = ipaddress.ip_address(result["host"])
                if not address.is_global:
                    raise FetchError(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


class AudioFetcher:
    def __init__(
        self, *, max_bytes: int = 8 * 1024 * 1024, timeout_s: float = 10.0, max_redirects: int = 3,
        allow_private: bool = False,
    ) -> None:
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._max_redirects = max_redirects
        self._allow_private = allow_private

    async def fetch(self, url: str) -> bytes:
        try:
            return await asyncio.wait_for(self._fetch(url), self._timeout_s)
        except TimeoutError as exc:
            raise FetchError("timed out") from exc
        except (aiohttp.ClientError, ValueError, OSError) as exc:
            raise FetchError(f"{exc.__class__.__name__}") from exc

    async def _fetch(self, url: str) -> bytes:
        connector = aiohttp.TCPConnector(resolver=_CheckingResolver(self._allow_private), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _hop in range(self._max_redirects + 1):
                parsed = URL(url)
                if parsed.scheme not in ("http", "https"):
                    raise FetchError(f"scheme {parsed.scheme!r} is not allowed")
                self._check_literal_host(parsed.host or "")
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                        url = str(parsed.join(URL(response.headers["Location"])))
                        continue
                    if response.status != 200:
                        raise FetchError(f"HTTP {response.status}")
                    return await self._read_capped(response)
        raise FetchError("too many redirects")

    def _check_literal_host(self, host: str) -> None:
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return  # a name: the resolver checks what it resolves to
        if not self._allow_private and not address.is_global:
            raise FetchError("non-public address")

    async def _read_capped(self, response: Any) -> bytes:
        length = response.content_length
        if length is not None and length > self._max_bytes:
            raise FetchError("too large")
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.content.iter_chunked(65536):
            total += len(chunk)
            if total > self._max_bytes:
                raise FetchError("too large")
            chunks.append(chunk)
        return b"".join(chunks)
