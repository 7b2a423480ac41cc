"""Login with Amazon: the refresh-token grant (protocol reference §2.1) behind a single-flight token cache.

- The access token is cached and refreshed ``refresh_ahead_s`` before it expires (default 5 minutes).
- However many callers wait, one refresh runs at a time; they all get its result.
- ``invalidate(token)`` is called when AVS answers 403: the next ``get_token()`` refreshes, once, unless a newer
  token already replaced the rejected one.
- LWA may rotate the refresh token; the new one is persisted (0600, atomic) before it is used.
- Terminal LWA errors (``invalid_grant`` ...) raise AuthError (re-link the device); 5xx or no answer raises
  AuthUnavailableError (retry with back-off). Neither message contains a token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from avsd.avs.credentials import Credentials, load_credentials, save_credentials
from avsd.avs.http import HttpClient, HttpReply
from avsd.errors import AuthError, AuthUnavailableError, AvsConnectionError, CredentialsError

_LOGGER = logging.getLogger(__name__)

DEFAULT_TOKEN_URL = "https://api.amazon.com/auth/o2/token"
DEFAULT_CODEPAIR_URL = "https://api.amazon.com/auth/o2/create/codepair"
TERMINAL_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "invalid_request", "unsupported_grant_type"}
)


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_at: float  # clock() time

    def __repr__(self) -> str:
        return f"AccessToken(<redacted>, expires_at={self.expires_at:.0f})"


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A successful LWA token answer."""

    access_token: str
    refresh_token: str
    expires_in: float

    def __repr__(self) -> str:
        return f"TokenGrant(<redacted>, expires_in={self.expires_in})"


def parse_token_response(response: HttpReply) -> TokenGrant:
    """Validate an LWA token answer the way the SDK does; map errors to AuthError / AuthUnavailableError."""
    if response.status >= 500:
        raise AuthUnavailableError("servererror", f"LWA answered {response.status}")
    try:
        doc = response.json()
    except (ValueError, json.JSONDecodeError):
        raise AuthUnavailableError(
            "servererror", f"LWA answered {response.status} without JSON"
        ) from None
    if not isinstance(doc, dict):
        raise AuthUnavailableError("servererror", "LWA answer is not a JSON object")
    if response.status != 200:
        error = str(doc.get("error") or f"http_{response.status}")
        description = str(doc.get("error_description") or "")
        if error in TERMINAL_ERRORS:
            raise AuthError(error, description)
        raise AuthUnavailableError(error, description)
    access, refresh, kind, expires = (
        doc.get("access_token"),
        doc.get("refresh_token"),
        doc.get("token_type"),
        doc.get("expires_in"),
    )
    if not (isinstance(access, str) and access and isinstance(refresh, str) and refresh):
        raise AuthUnavailableError("servererror", "LWA answer lacks access_token or refresh_token")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise AuthUnavailableError("servererror", "LWA answer token_type is not bearer")
    if not isinstance(expires, int | float) or expires <= 0:
        raise AuthUnavailableError("servererror", "LWA answer expires_in is not positive")
    return TokenGrant(access, refresh, float(expires))


class TokenProvider:
    """Hands out a valid LWA access token for the ``authorization`` header."""

    def __init__(
        self,
        *,
        token_url: str,
        credentials_path: Path | None,
        http: HttpClient,
        refresh_ahead_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        credentials: Credentials | None = None,
    ) -> None:
        # ``credentials`` given (the library's arguments): kept in memory; a rotated refresh token is written to
        # ``credentials_path`` only when there is one.
        self._token_url = token_url
        self._credentials_path = credentials_path
        self._http = http
        self._refresh_ahead_s = refresh_ahead_s
        self._clock = clock
        self._credentials: Credentials | None = credentials
        self._token: AccessToken | None = None
        self._refreshing: asyncio.Task[AccessToken] | None = None
        self.refresh_count = 0

    @property
    def credentials(self) -> Credentials:
        if self._credentials is None:
            if self._credentials_path is None:
                raise CredentialsError("no credentials given and no credentials file")
            self._credentials = load_credentials(self._credentials_path)
        return self._credentials

    def _fresh(self, token: AccessToken | None) -> bool:
        return token is not None and self._clock() < token.expires_at - self._refresh_ahead_s

    async def get_token(self) -> str:
        token = self._token
        if token is not None and self._fresh(token):
            return token.value
        return (await self._refresh_once()).value

    def invalidate(self, rejected: str) -> None:
        """AVS answered 403 to a request that carried ``rejected``: force a refresh unless already replaced."""
        if self._token is not None and self._token.value == rejected:
            _LOGGER.info("access token rejected by AVS; refreshing")
            self._token = None

    async def _refresh_once(self) -> AccessToken:
        # Single flight: every caller awaits the same task. shield() keeps one impatient caller's cancellation
        # from cancelling the refresh that the others are waiting for.
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._refresh(), name="lwa-refresh")
            # Every waiter may have gone (cancelled) by the time it fails: its error is reported to the waiters
            # that remain, never as "Task exception was never retrieved".
            self._refreshing.add_done_callback(lambda task: task.cancelled() or task.exception())
        return await asyncio.shield(self._refreshing)

    async def _refresh(self) -> AccessToken:
        credentials = self.credentials
        form = {
            "grant_type": "refresh_token",
            "refresh_token": credentials.refresh_token,
            "client_id": credentials.client_id,
        }
        if credentials.client_secret:
            form["client_secret"] = credentials.client_secret
        started = self._clock()
        try:
            response = await self._http.request("POST", self._token_url, form=form, timeout=60.0)
        except AvsConnectionError as exc:
            raise AuthUnavailableError("servererror", f"LWA unreachable: {exc}") from exc
        grant = parse_token_response(response)
        if grant.refresh_token != credentials.refresh_token:
            # LWA rotated the refresh token: persist before relying on it, or a crash would lose the link.
            updated = credentials.with_refresh_token(grant.refresh_token)
            if self._credentials_path is not None:
                await asyncio.to_thread(save_credentials, self._credentials_path, updated)
            self._credentials = updated
        token = AccessToken(grant.access_token, started + grant.expires_in)
        self._token = token
        self.refresh_count += 1
        _LOGGER.info("access token refreshed; valid for %.0f s", grant.expires_in)
        return token
