"""`avsd login`: Code-Based Linking and the browser (authorization-code) flow, end to end against the emulator's LWA.

The emulator's LWA polls at 5 s and keeps code pairs 10 minutes, like Amazon's; the tests shrink both through
its (private) attributes, since the Emulator constructor does not take them.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from avsd.avs.auth import TokenProvider
from avsd.avs.client import make_ssl_context
from avsd.avs.credentials import load_credentials
from avsd.avs.http import HttpClient
from avsd.emulator.server import Emulator
from avsd.errors import AuthError, ConfigError
from avsd.login import (
    CodePair,
    LoginTarget,
    PollStep,
    classify_poll,
    login_browser,
    login_cbl,
    next_interval,
    scope_data,
)


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(cert_dir=tmp_path / "certs") as emu:
        emu.lwa.poll_interval_s = 0.05
        yield emu


def target_for(emu: Emulator, tmp_path: Path, client_id: str = "amzn1.application-oa2-client.test") -> LoginTarget:
    return LoginTarget(
        client_id=client_id,
        product_id="avsd_test",
        serial="rpi-0001",
        credentials_path=tmp_path / "state" / "credentials.json",
        token_url=emu.base_url + "/auth/o2/token",
        codepair_url=emu.base_url + "/auth/o2/create/codepair",
        authorize_url=emu.base_url + "/ap/oa",
    )


def http_for(emu: Emulator) -> HttpClient:
    return HttpClient(ssl_context=make_ssl_context(str(emu.ca_file)))


async def assert_refresh_works(emu: Emulator, path: Path) -> None:
    """The stored refresh token is real: LWA issues an access token for it, and AVS accepts that."""
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    async with http_for(emu) as http:
        tokens = TokenProvider(token_url=emu.base_url + "/auth/o2/token", credentials_path=path, http=http)
        token = await tokens.get_token()
    assert emu.lwa.is_valid_access_token(token)


# ----- pure policy -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expired", "step"),
    [
        (None, False, PollStep.LINKED),
        ("authorization_pending", False, PollStep.WAIT),
        ("slow_down", False, PollStep.SLOW_DOWN),
        ("invalid_code_pair", False, PollStep.NEW_PAIR),
        ("authorization_pending", True, PollStep.NEW_PAIR),
        ("servererror", False, PollStep.RETRY),
    ],
)
def test_classify_poll(error: str | None, expired: bool, step: PollStep) -> None:
    assert classify_poll(error, expired=expired) is step


@pytest.mark.parametrize(
    ("step", "interval", "minimum", "expected"),
    [
        (PollStep.WAIT, 30.0, 5.0, 30.0),
        (PollStep.WAIT, 1.0, 5.0, 5.0),  # never faster than the SDK's 5 s
        (PollStep.SLOW_DOWN, 5.0, 5.0, 10.0),
        (PollStep.SLOW_DOWN, 40.0, 5.0, 60.0),  # capped
        (PollStep.SLOW_DOWN, 0.0, 0.0, 0.0),
        (PollStep.RETRY, 7.0, 5.0, 7.0),
    ],
)
def test_next_interval(step: PollStep, interval: float, minimum: float, expected: float) -> None:
    assert next_interval(step, interval, min_interval_s=minimum) == expected


def test_scope_data_shape() -> None:
    doc = json.loads(scope_data("prod", "dsn"))
    assert doc == {"alexa:all": {"productID": "prod", "productInstanceAttributes": {"deviceSerialNumber": "dsn"}}}


def test_empty_client_id_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"auth\.client_id"):
        LoginTarget("", "p", "s", tmp_path / "c.json", "t", "c", "a")


# ----- Code-Based Linking -------------------------------------------------------------------------------------


async def test_cbl_links_after_the_user_enters_the_code(emulator: Emulator, tmp_path: Path) -> None:
    target = target_for(emulator, tmp_path)
    out = io.StringIO()
    codes: list[CodePair] = []
    loop = asyncio.get_running_loop()

    def on_code(pair: CodePair) -> None:
        codes.append(pair)
        loop.call_later(0.3, emulator.lwa.approve, pair.user_code)  # the user types it a moment later

    async with asyncio.timeout(15), http_for(emulator) as http:
        credentials = await login_cbl(target, http, out, min_interval_s=0.0, on_code=on_code)
    assert len(codes) == 1
    text = out.getvalue()
    assert codes[0].user_code in text and codes[0].verification_uri in text
    assert "█" in text or "▀" in text or "▄" in text  # the QR code was drawn
    assert credentials.refresh_token not in text
    polls = [r for r in emulator.records if r.path.lower().endswith("/token")]
    assert len(polls) >= 3  # authorization_pending was answered and honoured before the approval
    assert load_credentials(target.credentials_path) == credentials
    await assert_refresh_works(emulator, target.credentials_path)


async def test_cbl_gets_a_new_code_when_one_expires(emulator: Emulator, tmp_path: Path) -> None:
    emulator.lwa.code_pair_lifetime_s = 0.4
    codes: list[CodePair] = []

    def on_code(pair: CodePair) -> None:
        codes.append(pair)
        if len(codes) == 2:  # the user only gets to the second code
            emulator.lwa.approve(pair.user_code)

    out = io.StringIO()
    async with asyncio.timeout(15), http_for(emulator) as http:
        await login_cbl(target_for(emulator, tmp_path), http, out, min_interval_s=0.0, qr=False, on_code=on_code)
    assert len(codes) == 2 and codes[0].user_code != codes[1].user_code
    assert "expired" in out.getvalue()


async def test_cbl_gives_up_after_three_expired_codes(emulator: Emulator, tmp_path: Path) -> None:
    emulator.lwa.code_pair_lifetime_s = 0.2
    async with asyncio.timeout(15), http_for(emulator) as http:
        with pytest.raises(AuthError, match="3 times"):
            await login_cbl(target_for(emulator, tmp_path), http, io.StringIO(), min_interval_s=0.0, qr=False)
    assert not (tmp_path / "state" / "credentials.json").exists()


async def test_cbl_unknown_client_is_terminal(tmp_path: Path) -> None:
    async with Emulator(cert_dir=tmp_path / "certs", client_id="the-real-one") as emu, http_for(emu) as http:
        with pytest.raises(AuthError, match="invalid_client"):
            await login_cbl(target_for(emu, tmp_path, "someone-else"), http, io.StringIO(), qr=False)


async def test_avsd_login_command_end_to_end(emulator: Emulator, tmp_path: Path) -> None:
    """The real CLI in a subprocess: it prints the code, the "user" enters it, the credentials appear."""
    config = tmp_path / "avsd.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[avs]\nendpoint = "{emulator.base_url}"\nca_file = "{emulator.ca_file}"\n'
        '[auth]\nclient_id = "amzn1.application-oa2-client.cli"\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsd", "login", "--config", str(config), "--min-interval", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen = b""
    async with asyncio.timeout(30):
        while (match := re.search(rb"enter the code\s+([A-Z0-9]+)", seen)) is None:
            chunk = await proc.stdout.read(4096)
            assert chunk, seen.decode(errors="replace")
            seen += chunk
        assert emulator.lwa.approve(match.group(1).decode())
        rest, err = await proc.communicate()
    output = (seen + rest).decode()
    assert proc.returncode == 0, err.decode()
    credentials = load_credentials(tmp_path / "state" / "credentials.json")
    assert "Linked." in output and credentials.refresh_token not in output + err.decode()
    await assert_refresh_works(emulator, tmp_path / "state" / "credentials.json")


# ----- the browser flow ---------------------------------------------------------------------------------------


async def test_browser_flow_links_through_the_local_page(emulator: Emulator, tmp_path: Path) -> None:
    target = target_for(emulator, tmp_path)
    out = io.StringIO()
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    async with asyncio.timeout(20), http_for(emulator) as http:
        login = asyncio.create_task(
            login_browser(target, http, out, client_secret="s3cret", port=0, on_listening=listening.set_result)
        )
        port = await listening
        # The "browser": open the local page and follow the redirects (to LWA's consent page and back).
        browser_tls = make_ssl_context(str(emulator.ca_file))
        async with httpx.AsyncClient(http2=True, verify=browser_tls, follow_redirects=True) as browser:
            page = await browser.get(f"http://localhost:{port}/")
        credentials = await login
    assert page.status_code == 200 and "linked" in page.text
    hops = [str(r.url) for r in page.history]
    assert hops[0].startswith(f"http://localhost:{port}/") and "/ap/oa?" in hops[1]
    assert str(page.url).startswith(f"http://localhost:{port}/callback/?code=")
    assert credentials.client_secret == "s3cret"
    assert credentials.refresh_token not in out.getvalue()
    assert f"http://localhost:{port}/callback/" in out.getvalue()
    await assert_refresh_works(emulator, target.credentials_path)


async def test_browser_flow_rejects_a_forged_callback(emulator: Emulator, tmp_path: Path) -> None:
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    async with asyncio.timeout(20), http_for(emulator) as http:
        login = asyncio.create_task(
            login_browser(
                target_for(emulator, tmp_path), http, io.StringIO(), client_secret="s", port=0, timeout_s=1.0,
                on_listening=listening.set_result,
            )
        )
        port = await listening
        async with httpx.AsyncClient() as browser:
            forged = await browser.get(f"http://127.0.0.1:{port}/callback/?code=abc&state=not-ours")
        assert forged.status_code == 400 and "state mismatch" in forged.text
        with pytest.raises(AuthError, match="no login within"):
            await login
    assert not (tmp_path / "state" / "credentials.json").exists()


async def test_browser_flow_needs_a_secret(emulator: Emulator, tmp_path: Path) -> None:
    async with http_for(emulator) as http:
        with pytest.raises(ConfigError, match="client secret"):
            await login_browser(target_for(emulator, tmp_path), http, io.StringIO(), client_secret="", port=0)
