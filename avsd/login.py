"""``avsd login``: link the device to an Amazon account and store the refresh token (0600, atomic).

Two flows (protocol reference §2.2, §2.3):

- Code-Based Linking (default; for a headless device): ask LWA for a code pair, show the URL and the code (and the
  URL as a QR code), then poll the token endpoint. ``authorization_pending`` -> keep polling at ``interval``;
  ``slow_down`` -> double the interval (max 60 s); ``invalid_code_pair`` or our own clock passing ``expires_in``
  -> start again with a new code pair (as the SDK does), at most :data:`MAX_CODE_PAIRS` times; any other LWA
  error is terminal. A conservative client polls no faster than 5 s whatever the server says (§2.2); tests lower
  ``min_interval_s``.
- ``--browser``: the authorization-code flow of the alexa_client helper. A local page on
  ``http://localhost:9000/`` redirects to the LWA consent page; LWA redirects back to ``/callback/?code=...``,
  which is exchanged (with the client secret) for tokens. The ``state`` parameter ties the callback to our
  redirect.

Tokens are never printed or logged; only "linked" and the path of the credentials file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qs, urlencode, urlsplit

from avsd.avs.auth import TokenGrant, parse_token_response
from avsd.avs.credentials import Credentials, save_credentials
from avsd.avs.http import HttpClient, HttpReply
from avsd.errors import AuthError, AuthUnavailableError, AvsConnectionError, ConfigError

_LOGGER = logging.getLogger(__name__)

MAX_CODE_PAIRS = 3
MAX_INTERVAL_S = 60.0
SDK_MIN_INTERVAL_S = 5.0
DEFAULT_BROWSER_PORT = 9000


def scope_data(product_id: str, serial: str) -> str:
    """The ``scope_data`` JSON string for ``alexa:all`` (§2)."""
    return json.dumps(
        {"alexa:all": {"productID": product_id, "productInstanceAttributes": {"deviceSerialNumber": serial}}},
        separators=(",", ":"),
    )


@dataclass(frozen=True, slots=True)
class CodePair:
    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    expires_in: float
    interval: float


def parse_code_pair(response: HttpReply) -> CodePair:
    """Validate a code-pair answer the way the SDK does (every field present, ``expires_in`` > 0)."""
    if response.status != 200:
        parse_token_response(response)  # raises the mapped LWA error for any non-200 answer
        raise AuthUnavailableError("servererror", f"code pair request answered {response.status}")
    try:
        doc = response.json()
        pair = CodePair(
            device_code=str(doc["device_code"]),
            user_code=str(doc["user_code"]),
            verification_uri=str(doc["verification_uri"]),
            expires_in=float(doc["expires_in"]),
            interval=float(doc.get("interval", SDK_MIN_INTERVAL_S)),
        )
    except (ValueError, KeyError, TypeError):
        raise AuthUnavailableError("servererror", "malformed code pair answer") from None
    if not (pair.device_code and pair.user_code and pair.verification_uri) or pair.expires_in <= 0:
        raise AuthUnavailableError("servererror", "incomplete code pair answer")
    return pair


class PollStep(StrEnum):
    LINKED = "linked"
    WAIT = "wait"  # authorization_pending: poll again after the interval
    SLOW_DOWN = "slow_down"  # poll again after twice the interval
    NEW_PAIR = "new_pair"  # the pair expired or is unknown: start again from step 1
    RETRY = "retry"  # LWA unavailable: try again after the interval


def classify_poll(error: str | None, *, expired: bool) -> PollStep:
    """What to do after one token poll. ``error`` is LWA's ``error`` (None = tokens issued). Pure.

    Terminal errors (invalid_grant, invalid_client ...) are not classified: the caller raises them.
    """
    if error is None:
        return PollStep.LINKED
    if error == "invalid_code_pair" or expired:
        return PollStep.NEW_PAIR
    if error == "authorization_pending":
        return PollStep.WAIT
    if error == "slow_down":
        return PollStep.SLOW_DOWN
    return PollStep.RETRY


def next_interval(step: PollStep, interval: float, *, min_interval_s: float) -> float:
    """The polling interval after ``step``: the server's, never below ``min_interval_s``, doubled on slow_down."""
    interval = max(interval, min_interval_s)
    if step is PollStep.SLOW_DOWN:
        interval = min(max(interval * 2, min_interval_s), MAX_INTERVAL_S)
    return interval


def show_code(pair: CodePair, out: TextIO, *, qr: bool = True) -> None:
    out.write(
        f"\nTo link this device to your Amazon account, go to\n\n    {pair.verification_uri}\n\n"
        f"and enter the code\n\n    {pair.user_code}\n\n"
        f"(the code is valid for {pair.expires_in / 60:.0f} minutes)\n"
    )
    if qr:
        try:
            import segno

            segno.make(pair.verification_uri).terminal(out=out, compact=True)
        except Exception as exc:  # a QR code is a convenience; the URL above is enough
            _LOGGER.debug("no QR code: %s", exc)
    out.write("\nWaiting for you to enter the code ...\n")
    out.flush()


@dataclass(frozen=True, slots=True)
class LoginTarget:
    """Where to link: the LWA URLs, the product, and where to store the result."""

    client_id: str
    product_id: str
    serial: str
    credentials_path: Path
    token_url: str
    codepair_url: str
    authorize_url: str

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ConfigError("auth.client_id", "is empty: set it in the config file or pass --client-id")


async def login_cbl(
    target: LoginTarget,
    http: HttpClient,
    out: TextIO,
    *,
    min_interval_s: float = SDK_MIN_INTERVAL_S,
    qr: bool = True,
    clock: Callable[[], float] = time.monotonic,
    on_code: Callable[[CodePair], None] | None = None,
) -> Credentials:
    """Code-Based Linking to the end: returns (and has saved) the credentials."""
    form = {
        "response_type": "device_code",
        "client_id": target.client_id,
        "scope": "alexa:all",
        "scope_data": scope_data(target.product_id, target.serial),
    }
    for _ in range(MAX_CODE_PAIRS):
        pair = parse_code_pair(await _post(http, target.codepair_url, form))
        show_code(pair, out, qr=qr)
        if on_code is not None:
            on_code(pair)
        deadline = clock() + pair.expires_in
        interval = next_interval(PollStep.WAIT, pair.interval, min_interval_s=min_interval_s)
        while True:
            await asyncio.sleep(interval)
            poll = {"grant_type": "device_code", "device_code": pair.device_code, "user_code": pair.user_code}
            error: str | None = None
            grant: TokenGrant | None = None
            try:
                grant = parse_token_response(await _post(http, target.token_url, poll))
            except AuthUnavailableError as exc:
                error = exc.error  # authorization_pending, slow_down, invalid_code_pair, servererror
            step = classify_poll(error, expired=grant is None and clock() >= deadline)
            _LOGGER.debug("code pair poll: %s", step)
            if step is PollStep.LINKED:
                assert grant is not None
                return _store(target, Credentials(target.client_id, grant.refresh_token))
            if step is PollStep.NEW_PAIR:
                out.write("The code expired; here is a new one.\n")
                break
            interval = next_interval(step, interval, min_interval_s=min_interval_s)
    raise AuthError("expired_token", f"nobody entered the code {MAX_CODE_PAIRS} times in a row; run avsd login again")


async def _post(http: HttpClient, url: str, form: dict[str, str]) -> HttpReply:
    try:
        return await http.request("POST", url, form=form, timeout=60.0)
    except AvsConnectionError as exc:
        raise AuthUnavailableError("servererror", f"LWA unreachable: {exc}") from exc


def _store(target: LoginTarget, credentials: Credentials) -> Credentials:
    save_credentials(target.credentials_path, credentials)
    _LOGGER.info("device linked; credentials saved to %s", target.credentials_path)
    return credentials


# ----- the browser flow (authorization code, §2.3) ------------------------------------------------------------


def authorize_redirect(target: LoginTarget, redirect_uri: str, state: str) -> str:
    query = urlencode(
        {
            "client_id": target.client_id,
            "scope": "alexa:all",
            "scope_data": scope_data(target.product_id, target.serial),
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state,
        }
    )
    return f"{target.authorize_url}?{query}"


class _BrowserLogin:
    def __init__(
        self, target: LoginTarget, http: HttpClient, client_secret: str, redirect_uri: str
    ) -> None:
        self.target = target
        self.http = http
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.state = secrets.token_urlsafe(16)
        self.done: asyncio.Future[Credentials] = asyncio.get_running_loop().create_future()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(30):
                request_line = (await reader.readline()).decode("latin-1")
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: nothing in them matters here
            parts = request_line.split()
            if len(parts) < 2 or parts[0] != "GET":
                await _respond(writer, 405, "only GET")
                return
            url = urlsplit(parts[1])
            if url.path == "/":
                location = authorize_redirect(self.target, self.redirect_uri, self.state)
                await _respond(writer, 302, "to Amazon", location=location)
            elif url.path.rstrip("/") == "/callback":
                await self._callback(writer, {k: v[0] for k, v in parse_qs(url.query).items()})
            else:
                await _respond(writer, 404, "not found")
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _callback(self, writer: asyncio.StreamWriter, query: dict[str, str]) -> None:
        if query.get("state") != self.state:
            await _respond(writer, 400, "This answer is not for this login (state mismatch). Start again at /.")
            return
        if "error" in query:
            error = AuthError(query["error"], query.get("error_description", ""))
            await _respond(writer, 400, f"Amazon refused: {error}")
            if not self.done.done():
                self.done.set_exception(error)
            return
        form = {
            "grant_type": "authorization_code",
            "code": query.get("code", ""),
            "redirect_uri": self.redirect_uri,
            "client_id": self.target.client_id,
            "client_secret": self.client_secret,
        }
        try:
            grant = parse_token_response(await _post(self.http, self.target.token_url, form))
        except AuthError as exc:
            await _respond(writer, 502, f"Exchanging the code failed: {exc}")
            if not self.done.done():
                self.done.set_exception(exc)
            return
        credentials = _store(
            self.target, Credentials(self.target.client_id, grant.refresh_token, self.client_secret)
        )
        await _respond(writer, 200, "This device is linked to your Amazon account. You can close this page.")
        if not self.done.done():
            self.done.set_result(credentials)


async def _respond(writer: asyncio.StreamWriter, status: int, text: str, *, location: str | None = None) -> None:
    reason = {200: "OK", 302: "Found", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(
        status, "Error"
    )
    body = f"<!doctype html><title>avsd login</title><p>{text}</p>\n".encode()
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/html; charset=utf-8",
            f"Content-Length: {len(body)}", "Connection: close", "Cache-Control: no-store"]
    if location is not None:
        head.append(f"Location: {location}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


async def login_browser(
    target: LoginTarget,
    http: HttpClient,
    out: TextIO,
    *,
    client_secret: str,
    port: int = DEFAULT_BROWSER_PORT,
    host: str = "127.0.0.1",
    timeout_s: float = 600.0,
    on_listening: Callable[[int], None] | None = None,
) -> Credentials:
    """Serve ``http://localhost:<port>/`` until the callback has been exchanged (or ``timeout_s`` passes).

    ``port=0`` picks a free port (tests); ``on_listening(port)`` is called once the server listens.
    """
    if not client_secret:
        raise ConfigError("client_secret", "the browser flow needs the security profile's client secret")
    flow: _BrowserLogin | None = None

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert flow is not None
        await flow.serve(reader, writer)

    try:
        server = await asyncio.start_server(serve, host, port)
    except OSError as exc:
        raise ConfigError("--port", f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = server.sockets[0].getsockname()[1]
    redirect_uri = f"http://localhost:{bound}/callback/"
    flow = _BrowserLogin(target, http, client_secret, redirect_uri)
    out.write(
        f"\nOpen http://localhost:{bound}/ in a browser on this machine (or tunnel the port: "
        f"ssh -L {bound}:localhost:{bound} <this device>).\n"
        f"The security profile must allow the return URL {redirect_uri}\n"
    )
    out.flush()
    if on_listening is not None:
        on_listening(bound)
    try:
        async with asyncio.timeout(timeout_s):
            return await flow.done
    except TimeoutError:
        raise AuthError("timeout", f"no login within {timeout_s:.0f} s") from None
    finally:
        server.close()
        await server.wait_closed()
