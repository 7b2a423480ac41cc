"""Capabilities API (protocol reference §6.10): tell AVS which interfaces this device implements.

``PUT /v1/devices/@self/capabilities`` on first start and whenever the set (or the endpoint) changes. What was
last published successfully is remembered in ``<state_dir>/capabilities.json``, so an unchanged device does not
publish again at every start (SDK ``CapabilitiesDelegate``: only when body, endpoint, client or product changed).

The set is derived from what is registered: every implemented interface reports context (§5.2), so the context
entries' namespaces are the interfaces; System (no context) is always there, and PlaybackController goes with
AudioPlayer. Answers: 204 done; 400 logged and not retried (the body will not get better); 403, 5xx and transport
failures retried with back-off (the token provider refreshes on 403).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from avsd.avs.backoff import Backoff
from avsd.avs.http import HttpClient
from avsd.errors import AvsConnectionError, AvsdError, AvsServerError
from avsd.fileio import atomic_write
from avsd.settings import setting

_LOGGER = logging.getLogger(__name__)

CAPABILITIES_PATH = "/v1/devices/@self/capabilities"
ENVELOPE_VERSION = "20160207"
STATE_FILE = "capabilities.json"
MAX_ERROR_BODY = 4096

# Interface versions this avsd speaks (the baseline of the protocol reference).
VERSIONS: Mapping[str, str] = {
    "SpeechRecognizer": "2.0",
    "SpeechSynthesizer": "1.0",
    "AudioPlayer": "1.0",
    "PlaybackController": "1.0",
    "Speaker": "1.0",
    "Alerts": "1.1",
    "Notifications": "1.0",
    "System": "1.0",
    "AudioActivityTracker": "1.0",
    "TemplateRuntime": "1.1",  # only when template_runtime.enabled (it has no context entry to derive it from)
}
# Capabilities API hosts per AVS region (§6.10); a URL endpoint (the emulator) serves the API itself.
_API_HOSTS = {
    "alexa.na.gateway.devices.a2z.com": "https://api.amazonalexa.com",
    "alexa.eu.gateway.devices.a2z.com": "https://api.eu.amazonalexa.com",
    "alexa.fe.gateway.devices.a2z.com": "https://api.fe.amazonalexa.com",
}


class CapabilitiesError(AvsdError):
    """The capabilities state file cannot be written."""

    code = "capabilities"


@dataclass(frozen=True, slots=True)
class CapabilitiesSettings:
    maximum_alerts: int = setting(15, "Alerts 1.1 maximumAlerts.overall declared to AVS", min=1, max=100)
    # A zero first wait would retry a failing publish in a tight loop.
    retry_initial_s: float = setting(2.0, "first back-off after a failed publish (seconds)", gt=0.0, max=60.0)
    retry_max_s: float = setting(300.0, "longest back-off between publish attempts", gt=0.0, max=3600.0)


def interfaces_from_context(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """Namespaces of the context entries, plus System (and PlaybackController with AudioPlayer)."""
    names: list[str] = []
    for entry in entries:
        namespace = entry.get("header", {}).get("namespace")
        if isinstance(namespace, str) and namespace not in names:
            names.append(namespace)
    if "AudioPlayer" in names and "PlaybackController" not in names:
        names.append("PlaybackController")
    if "System" not in names:
        names.append("System")
    return names


def capabilities_body(interfaces: Iterable[str], settings: CapabilitiesSettings | None = None) -> bytes:
    """The PUT body, canonical (sorted by interface) so an unchanged set gives identical bytes."""
    cfg = settings or CapabilitiesSettings()
    caps: list[dict[str, Any]] = []
    for name in sorted(set(interfaces)):
        version = VERSIONS.get(name)
        if version is None:
            _LOGGER.warning("capabilities: no known version for interface %s; not declared", name)
            continue
        cap: dict[str, Any] = {"type": "AlexaInterface", "interface": name, "version": version}
        if name == "Alerts":
            total = cfg.maximum_alerts
            cap["configurations"] = {"maximumAlerts": {"overall": total, "alarms": total, "timers": total}}
        caps.append(cap)
    doc = {"envelopeVersion": ENVELOPE_VERSION, "capabilities": caps}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def capabilities_url(avs_base_url: str) -> str:
    host = avs_base_url.split("://", 1)[-1].split("/", 1)[0]
    base = _API_HOSTS.get(host, avs_base_url.rstrip("/"))
    return base + CAPABILITIES_PATH


class TokenSource(Protocol):
    async def get_token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


class HttpCapabilitiesApi:
    """PUT the body through the HTTP boundary (avsd/avs/http.py); non-2xx becomes AvsServerError."""

    def __init__(self, http: HttpClient, tokens: TokenSource) -> None:
        self._http = http
        self._tokens = tokens

    async def put(self, url: str, body: bytes) -> None:
        token = await self._tokens.get_token()
        response = await self._http.request(
            "PUT",
            url,
            content=body,
            # Both headers: the SDK sends x-amz-access-token, other clients Authorization (§6.10).
            headers={
                "content-type": "application/json",
                "authorization": f"Bearer {token}",
                "x-amz-access-token": token,
            },
            limit=MAX_ERROR_BODY,
        )
        if 200 <= response.status < 300:
            return
        if response.status == 403:
            self._tokens.invalidate(token)
        message = ""
        try:
            doc = response.json()
            message = str(doc.get("message") or doc.get("description") or "") if isinstance(doc, dict) else ""
        except ValueError:
            pass
        raise AvsServerError(response.status, "CAPABILITIES", message)


class CapabilitiesPublisher:
    def __init__(
        self,
        *,
        put: Callable[[str, bytes], Awaitable[None]],
        state_dir: Path,
        settings: CapabilitiesSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._put = put
        self._state_path = state_dir / STATE_FILE
        self._settings = settings or CapabilitiesSettings()
        self._rng = rng or random.Random()
        self.published = 0

    def last_published(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self._state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def needed(self, url: str, body: bytes) -> bool:
        last = self.last_published()
        return last is None or last.get("url") != url or last.get("body") != body.decode()

    def _remember(self, url: str, body: bytes) -> None:
        data = json.dumps({"url": url, "body": body.decode()}).encode()
        try:
            atomic_write(self._state_path, data)
        except OSError as exc:
            raise CapabilitiesError(f"cannot write {self._state_path}: {exc}") from exc

    async def publish(self, url: str, body: bytes) -> bool:
        """Publish if needed, retrying until AVS answers. True when a PUT was made and accepted."""
        if not self.needed(url, body):
            _LOGGER.info("capabilities unchanged since the last publish; not sent")
            return False
        cfg = self._settings
        backoff = Backoff.exponential(cfg.retry_initial_s, cfg.retry_max_s, jitter=(0.5, 1.0), rng=self._rng)
        while True:
            try:
                await self._put(url, body)
            except AvsServerError as exc:
                if exc.status == 400:
                    _LOGGER.error("AVS rejected the capabilities (400): %s", exc.description)
                    return False
                _LOGGER.warning("capabilities publish failed: %s; retrying", exc)
            except AvsConnectionError as exc:
                _LOGGER.info("capabilities publish failed: %s; retrying", exc)
            except AvsdError as exc:  # auth trouble and the like: retried like the rest
                _LOGGER.warning("capabilities publish failed: %s; retrying", exc)
            else:
                await asyncio.to_thread(self._remember, url, body)
                self.published += 1
                _LOGGER.info("capabilities published (%d bytes)", len(body))
                return True
            await asyncio.sleep(backoff.next_delay())


__all__ = [
    "CapabilitiesPublisher",
    "CapabilitiesSettings",
    "HttpCapabilitiesApi",
    "capabilities_body",
    "capabilities_url",
    "interfaces_from_context",
]
