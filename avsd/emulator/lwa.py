"""The emulator's Login with Amazon (protocol reference §2.1-2.3, §11.2): pure state plus an injected clock.

The HTTP/2 server maps its routes onto this object and serialises :class:`LwaReply`::

    POST /auth/o2/token            -> LwaServer.token(form)            (also /auth/O2/token)
    POST /auth/o2/create/codepair  -> LwaServer.create_codepair(form)  (also /auth/O2/create/codepair)
    GET  /ap/oa                    -> LwaServer.authorize(query)       302 to the redirect_uri (auto-consent)

Grants: ``refresh_token`` (§2.1), ``device_code`` (Code-Based Linking, §2.2) and ``authorization_code`` (the
localhost-redirect helper, §2.3). Errors are LWA-shaped ``{"error": ..., "error_description": ...}`` with
status 400 (``invalid_client`` is 401, as OAuth 2.0 (RFC 6749 §5.2) and LWA use for failed client auth).

Emulation choices where the real service is not documented (§2.2, §12):
- Polling faster than ``interval`` answers ``slow_down``; every poll (even a refused one) restarts the clock.
- An unknown, mismatched or expired device code answers ``invalid_code_pair`` (what the SDK maps to "restart
  from step 1"); expired pairs are forgotten.
- A linked device gets a fresh refresh token; the configured one stays valid too. Refresh keeps the token
  the client sent (LWA does not rotate in practice).
- Authorization codes live 5 minutes and are single use.

Tokens are never logged.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["LwaReply", "LwaServer", "LwaSettings", "parse_lwa_body"]

_log = logging.getLogger(__name__)

AUTH_CODE_LIFETIME_S = 300.0
# Unambiguous characters for codes a person types (no 0/O, 1/I/L).
_USER_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_USER_CODE_LENGTH = 6


@dataclass(frozen=True, slots=True)
class LwaSettings:
    """Tunables of the emulated LWA (the refresh token and client credentials come from the emulator)."""

    access_token_lifetime_s: float = field(
        default=3600.0, metadata={"help": "lifetime of issued access tokens", "min": 1.0, "max": 86400.0}
    )
    code_pair_lifetime_s: float = field(
        default=600.0,
        metadata={"help": "lifetime of a CBL code pair (expires_in)", "min": 1.0, "max": 86400.0},
    )
    poll_interval_s: float = field(
        default=5.0, metadata={"help": "minimum CBL polling interval (interval)", "min": 0.0, "max": 600.0}
    )
    verification_uri: str = field(
        default="https://localhost/code", metadata={"help": "URL the user is told to visit to enter the code"}
    )
    auto_approve: bool = field(
        default=False, metadata={"help": "link every code pair as soon as it is created"}
    )


@dataclass(frozen=True, slots=True)
class LwaReply:
    """What the HTTP layer sends: ``status``, a JSON ``body`` (None for redirects), ``location`` for a 302."""

    status: int
    body: dict[str, object] | None = None
    location: str | None = None


@dataclass(slots=True)
class _CodePair:
    device_code: str
    user_code: str
    expires_at: float
    approved: bool = False
    last_poll: float | None = None


@dataclass(frozen=True, slots=True)
class _AuthCode:
    client_id: str
    redirect_uri: str
    expires_at: float


def _error(error: str, description: str, status: int = 400) -> LwaReply:
    return LwaReply(status, {"error": error, "error_description": description})


def parse_lwa_body(content_type: str, body: bytes) -> dict[str, str] | LwaReply:
    """The parameters of an LWA POST, form-encoded (RFC 6749) or JSON (Amazon's token endpoint accepts both;
    alexa_client and other ``requests`` users post JSON). A body that cannot be read answers LWA's
    ``invalid_request``. Non-string JSON values are taken as their JSON text (``scope_data`` may be sent as an
    object), null is refused."""
    mime = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _error("invalid_request", "the request body is not UTF-8")
    if mime == "application/json" or (not mime and text.lstrip().startswith("{")):
        try:
            doc = json.loads(text) if text.strip() else {}
        except (ValueError, RecursionError):
            return _error("invalid_request", "the JSON request body does not parse")
        if not isinstance(doc, dict):
            return _error("invalid_request", "the JSON request body must be an object")
        params: dict[str, str] = {}
        for key, value in doc.items():
            if value is None:
                return _error("invalid_request", f"parameter {key!r} must not be null")
            params[key] = value if isinstance(value, str) else json.dumps(value)
        return params
    return dict(parse_qsl(text, keep_blank_values=True))


def _seconds(value: float) -> float | int:
    """``expires_in`` as an integer when it is whole (as LWA sends it); tests may shrink it below a second."""
    return int(value) if float(value).is_integer() else value


def _scope_data_problem(scope: str, scope_data: str) -> str | None:
    """Why ``scope``/``scope_data`` are unacceptable for ``alexa:all`` (§2), or None."""
    if "alexa:all" not in scope.split():
        return "scope must contain alexa:all"
    try:
        doc = json.loads(scope_data)
    except (ValueError, RecursionError):
        return "scope_data is not valid JSON"
    alexa = doc.get("alexa:all") if isinstance(doc, dict) else None
    if not isinstance(alexa, dict):
        return "scope_data has no alexa:all object"
    product_id = alexa.get("productID")
    if not isinstance(product_id, str) or not product_id:
        return "scope_data alexa:all.productID is missing"
    attributes = alexa.get("productInstanceAttributes")
    serial = attributes.get("deviceSerialNumber") if isinstance(attributes, dict) else None
    if not isinstance(serial, str) or not serial:
        return "scope_data alexa:all.productInstanceAttributes.deviceSerialNumber is missing"
    return None


def _valid_redirect_uri(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


class LwaServer:
    """Emulated Login with Amazon. Not thread-safe: call it from the event loop only."""

    def __init__(
        self,
        *,
        refresh_token: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        access_token_lifetime_s: float = 3600.0,
        code_pair_lifetime_s: float = 600.0,
        poll_interval_s: float = 5.0,
        verification_uri: str = "https://localhost/code",
        auto_approve: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._refresh_token = refresh_token
        self._client_id = client_id
        self._client_secret = client_secret
        self._access_token_lifetime_s = access_token_lifetime_s
        self.code_pair_lifetime_s = code_pair_lifetime_s
        self.poll_interval_s = poll_interval_s
        self._verification_uri = verification_uri
        self._auto_approve = auto_approve
        self._clock = clock
        self._refresh_tokens: set[str] = {refresh_token}
        self._access_tokens: dict[str, float] = {}  # token -> expiry (clock time)
        self._code_pairs: dict[str, _CodePair] = {}  # by device code
        self._auth_codes: dict[str, _AuthCode] = {}

    @classmethod
    def from_settings(
        cls,
        settings: LwaSettings,
        *,
        refresh_token: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> LwaServer:
        return cls(
            refresh_token=refresh_token,
            client_id=client_id,
            client_secret=client_secret,
            access_token_lifetime_s=settings.access_token_lifetime_s,
            code_pair_lifetime_s=settings.code_pair_lifetime_s,
            poll_interval_s=settings.poll_interval_s,
            verification_uri=settings.verification_uri,
            auto_approve=settings.auto_approve,
            clock=clock,
        )

    @property
    def refresh_token(self) -> str:
        """The refresh token the emulator was configured with (always valid)."""
        return self._refresh_token

    # -- routes ----------------------------------------------------------------------------------------------

    def token(self, form: Mapping[str, str]) -> LwaReply:
        """``POST /auth/o2/token``."""
        grant_type = form.get("grant_type", "")
        if not grant_type:
            return _error("invalid_request", "grant_type is required")
        if grant_type == "refresh_token":
            return self._refresh_grant(form)
        if grant_type == "device_code":
            return self._device_code_grant(form)
        if grant_type == "authorization_code":
            return self._authorization_code_grant(form)
        return _error("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def create_codepair(self, form: Mapping[str, str]) -> LwaReply:
        """``POST /auth/o2/create/codepair`` (CBL step 1, §2.2)."""
        if form.get("response_type") != "device_code":
            return _error("invalid_request", "response_type must be device_code")
        client_id = form.get("client_id", "")
        if not client_id:
            return _error("invalid_request", "client_id is required")
        if self._client_id is not None and client_id != self._client_id:
            return _error("invalid_client", "unknown client_id", 401)
        problem = _scope_data_problem(form.get("scope", ""), form.get("scope_data", ""))
        if problem is not None:
            return _error("invalid_request", problem)
        now = self._clock()
        self._forget_expired(now)
        device_code = secrets.token_urlsafe(24)
        user_code = self._new_user_code()
        pair = _CodePair(
            device_code, user_code, now + self.code_pair_lifetime_s, approved=self._auto_approve
        )
        self._code_pairs[device_code] = pair
        _log.info("LWA code pair created (user code %s, auto-approve %s)", user_code, self._auto_approve)
        return LwaReply(
            200,
            {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": self._verification_uri,
                "expires_in": _seconds(self.code_pair_lifetime_s),
                "interval": _seconds(self.poll_interval_s),
            },
        )

    def authorize(self, query: Mapping[str, str]) -> LwaReply:
        """``GET /ap/oa`` (§2.3): the user consents at once; 302 back with ``code`` and ``scope=alexa%3Aall``.

        Errors the redirect URI cannot be trusted for (missing/invalid redirect_uri, unknown client) answer
        400 JSON; the others redirect with ``error=`` as OAuth 2.0 §4.1.2.1 prescribes.
        """
        redirect_uri = query.get("redirect_uri", "")
        if not _valid_redirect_uri(redirect_uri):
            return _error("invalid_request", "redirect_uri is missing or not an absolute http(s) URL")
        client_id = query.get("client_id", "")
        if not client_id:
            return _error("invalid_request", "client_id is required")
        if self._client_id is not None and client_id != self._client_id:
            return _error("invalid_client", "unknown client_id", 401)
        extra = {"state": query["state"]} if "state" in query else {}
        if query.get("response_type") != "code":
            return self._redirect(redirect_uri, {"error": "unsupported_response_type", **extra})
        problem = _scope_data_problem(query.get("scope", ""), query.get("scope_data", ""))
        if problem is not None:
            return self._redirect(
                redirect_uri, {"error": "invalid_request", "error_description": problem, **extra}
            )
        now = self._clock()
        self._forget_expired(now)
        code = secrets.token_urlsafe(24)
        self._auth_codes[code] = _AuthCode(client_id, redirect_uri, now + AUTH_CODE_LIFETIME_S)
        _log.info("LWA authorization code issued for %s", redirect_uri)
        return self._redirect(redirect_uri, {"code": code, "scope": "alexa:all", **extra})

    # -- test hooks ------------------------------------------------------------------------------------------

    def approve(self, user_code: str) -> bool:
        """The user "entered the code" on the verification page. False if no live pair has that code."""
        now = self._clock()
        wanted = user_code.strip().upper()
        for pair in self._code_pairs.values():
            if pair.user_code == wanted and pair.expires_at > now:
                pair.approved = True
                _log.info("LWA code pair %s approved", pair.user_code)
                return True
        return False

    def approve_all(self) -> int:
        """Approve every live, not yet approved pair; returns how many."""
        now = self._clock()
        count = 0
        for pair in self._code_pairs.values():
            if not pair.approved and pair.expires_at > now:
                pair.approved = True
                count += 1
        return count

    def is_valid_access_token(self, token: str) -> bool:
        expiry = self._access_tokens.get(token)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._access_tokens[token]
            return False
        return True

    def expire_access_tokens(self) -> None:
        """Fault injection: every access token issued so far is invalid from now on."""
        self._access_tokens.clear()
        _log.info("LWA: all access tokens expired")

    # -- grants ----------------------------------------------------------------------------------------------

    def _refresh_grant(self, form: Mapping[str, str]) -> LwaReply:
        refresh_token = form.get("refresh_token", "")
        if not refresh_token:
            return _error("invalid_request", "refresh_token is required")
        client_problem = self._client_problem(form, secret_required=False)
        if client_problem is not None:
            return client_problem
        if refresh_token not in self._refresh_tokens:
            return _error("invalid_grant", "the refresh token is invalid or was revoked")
        return self._issue(refresh_token)

    def _device_code_grant(self, form: Mapping[str, str]) -> LwaReply:
        device_code = form.get("device_code", "")
        user_code = form.get("user_code", "")
        if not device_code or not user_code:
            return _error("invalid_request", "device_code and user_code are required")
        now = self._clock()
        pair = self._code_pairs.get(device_code)
        if pair is None or pair.user_code != user_code.strip().upper():
            return _error("invalid_code_pair", "the code pair is unknown")
        if pair.expires_at <= now:
            del self._code_pairs[device_code]
            return _error("invalid_code_pair", "the code pair has expired")
        last_poll, pair.last_poll = pair.last_poll, now
        if last_poll is not None and now - last_poll < self.poll_interval_s:
            return _error("slow_down", f"poll no faster than every {self.poll_interval_s:g} s")
        if not pair.approved:
            return _error("authorization_pending", "the user has not entered the code yet")
        del self._code_pairs[device_code]
        return self._issue(self._new_refresh_token())

    def _authorization_code_grant(self, form: Mapping[str, str]) -> LwaReply:
        code = form.get("code", "")
        redirect_uri = form.get("redirect_uri", "")
        client_id = form.get("client_id", "")
        if not code or not redirect_uri or not client_id:
            return _error("invalid_request", "code, redirect_uri and client_id are required")
        client_problem = self._client_problem(form, secret_required=True)
        if client_problem is not None:
            return client_problem
        # Single use: a code is gone after the first attempt, successful or not (RFC 6749 §4.1.2).
        grant = self._auth_codes.pop(code, None)
        if grant is None or grant.expires_at <= self._clock():
            return _error("invalid_grant", "the authorization code is invalid, expired or already used")
        if grant.redirect_uri != redirect_uri:
            return _error("invalid_grant", "redirect_uri does not match the authorization request")
        if grant.client_id != client_id:
            return _error("invalid_grant", "the code was issued to another client")
        return self._issue(self._new_refresh_token())

    # -- helpers ---------------------------------------------------------------------------------------------

    def _client_problem(self, form: Mapping[str, str], *, secret_required: bool) -> LwaReply | None:
        """Client authentication. The id is checked when configured; the secret when configured and sent, or
        always for the auth-code grant (CBL-obtained tokens refresh with client_id only, §2.1)."""
        if self._client_id is not None and form.get("client_id") != self._client_id:
            return _error("invalid_client", "unknown client_id", 401)
        if self._client_secret is not None:
            secret = form.get("client_secret")
            if (secret is not None or secret_required) and secret != self._client_secret:
                return _error("invalid_client", "client authentication failed", 401)
        return None

    def _issue(self, refresh_token: str) -> LwaReply:
        now = self._clock()
        self._forget_expired(now)
        access_token = f"Atza|emu{secrets.token_urlsafe(32)}"
        self._access_tokens[access_token] = now + self._access_token_lifetime_s
        _log.info("LWA issued an access token (valid %g s)", self._access_token_lifetime_s)
        return LwaReply(
            200,
            {
                "access_token": access_token,
                "refresh_token": refresh_token,
                "token_type": "bearer",
                "expires_in": _seconds(self._access_token_lifetime_s),
            },
        )

    def _new_refresh_token(self) -> str:
        token = f"Atzr|emu{secrets.token_urlsafe(32)}"
        self._refresh_tokens.add(token)
        return token

    def _new_user_code(self) -> str:
        taken = {pair.user_code for pair in self._code_pairs.values()}
        while True:
            code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(_USER_CODE_LENGTH))
            if code not in taken:
                return code

    def _forget_expired(self, now: float) -> None:
        """Keep the tables bounded: drop expired tokens, pairs and codes."""
        for token in [t for t, expiry in self._access_tokens.items() if expiry <= now]:
            del self._access_tokens[token]
        for device_code in [d for d, p in self._code_pairs.items() if p.expires_at <= now]:
            del self._code_pairs[device_code]
        for code in [c for c, g in self._auth_codes.items() if g.expires_at <= now]:
            del self._auth_codes[code]

    @staticmethod
    def _redirect(redirect_uri: str, params: Mapping[str, str]) -> LwaReply:
        separator = "&" if urlsplit(redirect_uri).query else "?"
        return LwaReply(302, None, f"{redirect_uri}{separator}{urlencode(params)}")
