"""Signature helpers against the vendors' own vectors and packages; one-time tokens with an injected clock."""

from __future__ import annotations

import time

import jwt
import pytest

from avsd.web import OneTimeTokens, hs256_claims, hs256_token, twilio_sign, twilio_signature_ok

# twilio-python tests/unit/test_request_validator.py
VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
SECRET = "a-vonage-signature-secret-of-32-bytes+"


def test_twilio_vector_validates() -> None:
    assert twilio_signature_ok(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE)
    assert twilio_sign(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS) == VECTOR_SIGNATURE


@pytest.mark.parametrize(
    ("token", "url", "params", "signature"),
    [
        ("54321", VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE),  # wrong auth token
        (VECTOR_TOKEN, VECTOR_URL.replace("foo=1", "foo=2"), VECTOR_PARAMS, VECTOR_SIGNATURE),  # other URL
        (VECTOR_TOKEN, VECTOR_URL, {**VECTOR_PARAMS, "Digits": "1235"}, VECTOR_SIGNATURE),  # tampered form
        (VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS, None),  # no header
        ("", VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE),  # no token configured: nothing validates
    ],
)
def test_twilio_forgeries_fail(token: str, url: str, params: dict[str, str], signature: str | None) -> None:
    assert not twilio_signature_ok(token, url, params, signature)


def test_one_time_token_works_once_and_expires() -> None:
    now = [100.0]
    tokens = OneTimeTokens(ttl_s=60.0, clock=lambda: now[0])
    a, b = tokens.mint("+1555"), tokens.mint("+1666")
    assert tokens.consume(a) == "+1555"
    assert tokens.consume(a) is None
    now[0] += 61
    assert tokens.consume(b) is None
    assert tokens.consume(None) is None
    assert tokens.consume("made-up") is None


def test_one_time_tokens_are_bounded() -> None:
    tokens = OneTimeTokens(limit=10)
    minted = [tokens.mint(str(i)) for i in range(25)]
    assert tokens.consume(minted[0]) is None
    assert tokens.consume(minted[-1]) == "24"


def test_vonage_jwt_checked_with_body_hash() -> None:
    body = b'{"status":"answered"}'
    token = hs256_token(SECRET, body, application_id="app")
    assert hs256_claims(SECRET, "Bearer " + token, body) is not None
    assert hs256_claims("another-secret-that-is-32-bytes-long!", "Bearer " + token, body) is None
    assert hs256_claims(SECRET, "Bearer " + token, b'{"status":"completed"}') is None
    assert hs256_claims(SECRET, token, body) is None  # not a bearer header
    assert hs256_claims(SECRET, None, body) is None


def test_vonage_jwt_must_be_hs256() -> None:
    # alg=none must not pass, whatever its claims say
    forged = jwt.encode({"iat": int(time.time())}, key=None, algorithm="none")
    assert hs256_claims(SECRET, f"Bearer {forged}", b"") is None


async def test_server_binds_loopback_by_default_and_answers_health() -> None:
    import aiohttp

    from avsd.web import LOOPBACK, WebServer, create_app

    async with WebServer(create_app([])) as server, aiohttp.ClientSession() as http:
        assert server.host == LOOPBACK == "127.0.0.1"
        assert server.port > 0
        async with http.get(server.base_url + "/healthz") as response:
            assert response.status == 200
            assert await response.json() == {"status": "ok"}
        async with http.post(server.base_url + "/healthz", data=b"x" * 100_000) as response:
            assert response.status in (405, 413)  # no such route for POST, and bodies are capped anyway


async def test_port_in_use_is_one_error() -> None:
    from avsd.errors import AvsdError
    from avsd.web import WebServer, create_app

    async with WebServer(create_app([])) as first:
        with pytest.raises(AvsdError, match=r"cannot listen on 127\.0\.0\.1"):
            await WebServer(create_app([]), port=first.port).start()
