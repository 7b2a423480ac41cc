"""Credentials file handling, token parsing, and the single-flight token cache against a local LWA stand-in.

The full refresh-over-HTTP/2 path is tested against the emulator in tests/avs/test_client.py; here a tiny
``httpx.MockTransport`` plays LWA so the cache's timing logic can be driven with a fake clock.
"""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import httpx
import pytest

from avsd.avs.auth import TokenProvider, parse_token_response
from avsd.avs.backoff import Backoff
from avsd.avs.credentials import Credentials, load_credentials, save_credentials
from avsd.avs.http import HttpClient, HttpReply
from avsd.errors import AuthError, AuthUnavailableError, CredentialsError


def test_credentials_round_trip_is_0600_and_redacted(tmp_path: Path) -> None:
    path = tmp_path / "state" / "credentials.json"
    creds = Credentials("amzn1.client", "Atzr|secret-refresh", "client-secret")
    save_credentials(path, creds)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_credentials(path) == creds
    assert "secret" not in repr(creds)
    assert not list(path.parent.glob(".credentials-*")), "temp file left behind"


def test_loose_permissions_are_tightened(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"client_id": "c", "refresh_token": "r"}))
    path.chmod(0o644)
    load_credentials(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "avsd login"),
        ("not json", "not valid JSON"),
        ("[]", "JSON object"),
        (json.dumps({"client_id": "c"}), "refresh_token"),
        (json.dumps({"refresh_token": "Atzr|x"}), "client_id"),
    ],
)
def test_bad_credentials_files_name_the_problem_without_secrets(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "c.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CredentialsError, match=message) as info:
        load_credentials(path)
    assert "Atzr|x" not in str(info.value)


def _response(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


def _reply(status: int, body: object) -> HttpReply:
    return HttpReply(status, {"content-type": "application/json"}, json.dumps(body).encode())


def _grant(**changes: object) -> dict[str, object]:
    grant: dict[str, object] = {"access_token": "a", "refresh_token": "r", "token_type": "bearer", "expires_in": 5}
    return {**grant, **changes}


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (400, {"error": "invalid_grant", "error_description": "revoked"}, AuthError, "invalid_grant"),
        (400, {"error": "unauthorized_client"}, AuthError, "unauthorized_client"),
        (400, {"error": "authorization_pending"}, AuthUnavailableError, "authorization_pending"),
        (500, {"error": "servererror"}, AuthUnavailableError, "servererror"),
        (200, _grant(token_type="mac"), AuthUnavailableError, "servererror"),
        (200, _grant(access_token=""), AuthUnavailableError, "servererror"),
        (200, _grant(expires_in=0), AuthUnavailableError, "servererror"),
    ],
)
def test_token_response_validation(status: int, body: object, error: type[Exception], code: str) -> None:
    with pytest.raises(error) as info:
        parse_token_response(_reply(status, body))
    assert getattr(info.value, "error", None) == code
    if error is AuthError:
        assert not isinstance(info.value, AuthUnavailableError)


class FakeLwa:
    """Counts refresh grants; answers after ``delay`` so concurrent callers overlap."""

    def __init__(self, *, rotate: bool = False, delay: float = 0.05) -> None:
        self.calls: list[dict[str, str]] = []
        self.rotate = rotate
        self.delay = delay

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.content.decode()))
        self.calls.append(form)
        await asyncio.sleep(self.delay)
        n = len(self.calls)
        return _response(
            200,
            {
                "access_token": f"Atza|token-{n}",
                "refresh_token": f"Atzr|rotated-{n}" if self.rotate else form["refresh_token"],
                "token_type": "bearer",
                "expires_in": 3600,
            },
        )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _provider(tmp_path: Path, lwa: FakeLwa, clock: FakeClock) -> TokenProvider:
    path = tmp_path / "credentials.json"
    save_credentials(path, Credentials("client-1", "Atzr|original"))
    http = HttpClient(transport=httpx.MockTransport(lwa))
    return TokenProvider(token_url="https://lwa.test/auth/o2/token", credentials_path=path, http=http, clock=clock)


async def test_one_refresh_however_many_callers_wait(tmp_path: Path) -> None:
    lwa, clock = FakeLwa(), FakeClock()
    provider = _provider(tmp_path, lwa, clock)
    tokens = await asyncio.gather(*(provider.get_token() for _ in range(20)))
    assert set(tokens) == {"Atza|token-1"}
    assert len(lwa.calls) == 1
    assert lwa.calls[0] == {"grant_type": "refresh_token", "refresh_token": "Atzr|original", "client_id": "client-1"}


async def test_refreshes_about_five_minutes_before_expiry(tmp_path: Path) -> None:
    lwa, clock = FakeLwa(delay=0), FakeClock()
    provider = _provider(tmp_path, lwa, clock)
    assert await provider.get_token() == "Atza|token-1"
    clock.now += 3600 - 301
    assert await provider.get_token() == "Atza|token-1"
    clock.now += 2
    assert await provider.get_token() == "Atza|token-2"
    assert len(lwa.calls) == 2


async def test_a_403_invalidates_only_the_rejected_token(tmp_path: Path) -> None:
    lwa, clock = FakeLwa(delay=0), FakeClock()
    provider = _provider(tmp_path, lwa, clock)
    first = await provider.get_token()
    provider.invalidate("Atza|something-older")
    assert await provider.get_token() == first
    provider.invalidate(first)
    assert await provider.get_token() == "Atza|token-2"


async def test_rotated_refresh_token_is_persisted(tmp_path: Path) -> None:
    lwa, clock = FakeLwa(rotate=True, delay=0), FakeClock()
    provider = _provider(tmp_path, lwa, clock)
    await provider.get_token()
    assert load_credentials(tmp_path / "credentials.json").refresh_token == "Atzr|rotated-1"
    provider.invalidate("Atza|token-1")
    await provider.get_token()
    assert lwa.calls[1]["refresh_token"] == "Atzr|rotated-1"


async def test_cancelled_waiter_does_not_cancel_the_shared_refresh(tmp_path: Path) -> None:
    lwa, clock = FakeLwa(delay=0.2), FakeClock()
    provider = _provider(tmp_path, lwa, clock)
    impatient = asyncio.create_task(provider.get_token())
    patient = asyncio.create_task(provider.get_token())
    await asyncio.sleep(0.05)
    impatient.cancel()
    assert await asyncio.wait_for(patient, 2) == "Atza|token-1"
    assert len(lwa.calls) == 1


async def test_unreachable_lwa_is_retryable_and_says_nothing_secret(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    path = tmp_path / "credentials.json"
    save_credentials(path, Credentials("client-1", "Atzr|original"))
    http = HttpClient(transport=httpx.MockTransport(refuse))
    provider = TokenProvider(token_url="https://lwa.test/t", credentials_path=path, http=http)
    with pytest.raises(AuthUnavailableError) as info:
        await provider.get_token()
    assert "Atzr" not in str(info.value)


def test_backoff_follows_the_sdk_table_with_jitter_and_resets() -> None:
    import random

    backoff = Backoff(rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    for delay, base in zip(delays, (0.25, 1, 3, 5, 10, 20, 20, 20), strict=True):
        assert base * 0.66 <= delay <= base * 1.5
    backoff.reset()
    assert backoff.next_delay() <= 0.25 * 1.5
