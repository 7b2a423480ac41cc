"""The one asyncio web stack for avsd's HTTP and websocket front-ends (the telephone bridge, the virtual device).

aiohttp, chosen by measurement over Starlette + uvicorn (``bench/bench_web.py``; numbers in the README): it
starts faster, uses less memory, and brings the websocket *client* ``avsd phone-sim`` needs, so one library
serves both ends. This module holds what every front-end shares:

- :func:`create_app` (with ``GET /healthz``) and :class:`WebServer` (bound to loopback unless told otherwise);
- :class:`OneTimeTokens` for handing a caller's websocket a token it must present exactly once;
- :func:`twilio_signature_ok` (X-Twilio-Signature, with the ``twilio`` package's ``RequestValidator``) and
  :func:`hs256_claims` (Vonage's signed webhooks: a JWT signed HS256 with the signature secret).

Third-party errors of the web stack are mapped here; callers see ``AvsdError`` and booleans.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from avsd.errors import AvsdError

_LOGGER = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"  # the default bind of every front-end


async def _health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(routes: Iterable[web.AbstractRouteDef], *, client_max_size: int = 64 * 1024) -> web.Application:
    """An application with ``routes`` and ``GET /healthz``. Request bodies are capped (webhooks are small)."""
    app = web.Application(client_max_size=client_max_size)
    app.add_routes([web.get("/healthz", _health), *routes])
    return app


class WebServer:
    """Serve ``app`` on ``host:port`` (port 0 = any free one) until :meth:`aclose`."""

    def __init__(self, app: web.Application, host: str = LOOPBACK, port: int = 0) -> None:
        self.app, self.host, self.port = app, host, port
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def start(self) -> WebServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise AvsdError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        if self.port == 0 and self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])
        _LOGGER.info("listening on http://%s:%d", self.host, self.port)
        return self

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def aclose(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> WebServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class OneTimeTokens:
    """Tokens that are valid once, for ``ttl_s`` seconds, each bound to a subject (a caller)."""

    def __init__(self, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic, limit: int = 1000) -> None:
        self.ttl_s, self._clock, self._limit = ttl_s, clock, limit
        self._tokens: dict[str, tuple[float, str]] = {}

    def mint(self, subject: str) -> str:
        now = self._clock()
        self._tokens = {t: v for t, v in self._tokens.items() if v[0] > now}
        while len(self._tokens) >= self._limit:  # bounded: a flood of webhooks cannot grow it without end
            self._tokens.pop(next(iter(self._tokens)))
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (now + self.ttl_s, subject)
        return token

    def consume(self, token: object) -> str | None:
        """The token's subject if it is valid (and now spent), else None."""
        if not isinstance(token, str):
            return None
        entry = self._tokens.pop(token, None)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]


def twilio_signature_ok(auth_token: str, url: str, params: Mapping[str, str], signature: str | None) -> bool:
    """X-Twilio-Signature check with twilio's own ``RequestValidator`` (it tries the URL with and without port)."""
    if not auth_token or not signature:
        return False
    try:
        from twilio.request_validator import RequestValidator
    except ImportError as exc:
        raise AvsdError("the twilio package is not installed: pip install 'avsd[phone]'") from exc
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))


def twilio_sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """What Twilio puts in X-Twilio-Signature (used by ``avsd phone-sim``), again with ``RequestValidator``."""
    from twilio.request_validator import RequestValidator

    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))


def hs256_claims(secret: str, authorization: str | None, body: bytes) -> dict[str, Any] | None:
    """Claims of a valid ``Authorization: Bearer <JWT>`` signed HS256 with ``secret``, else None.

    Vonage puts the SHA-256 of the request body in the ``payload_hash`` claim; a body that does not match is
    refused like a bad signature.
    """
    if not secret or not authorization or not authorization.startswith("Bearer "):
        return None
    try:
        import jwt
    except ImportError as exc:
        raise AvsdError("PyJWT is not installed: pip install 'avsd[phone]'") from exc
    try:
        claims: dict[str, Any] = jwt.decode(
            authorization[len("Bearer ") :], secret, algorithms=["HS256"], options={"require": ["iat"]}
        )
    except jwt.PyJWTError as exc:
        _LOGGER.warning("refused a webhook: bad JWT (%s)", type(exc).__name__)
        return None
    expected = claims.get("payload_hash")
    if body and (not isinstance(expected, str) or not hmac.compare_digest(
        expected.lower(), hashlib.sha256(body).hexdigest()
    )):
        _LOGGER.warning("refused a webhook: payload_hash does not match the body")
        return None
    return claims


def hs256_token(secret: str, body: bytes, **claims: Any) -> str:
    """A Vonage-style signed-webhook JWT (``avsd phone-sim`` and tests)."""
    import jwt

    payload = {"iat": int(time.time()), "jti": secrets.token_hex(8), **claims}
    if body:
        payload["payload_hash"] = hashlib.sha256(body).hexdigest()
    return str(jwt.encode(payload, secret, algorithm="HS256"))
