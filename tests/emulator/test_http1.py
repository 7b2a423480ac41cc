"""LWA over HTTP/1.1 and HTTP/2 on the one port, form-encoded and JSON, with real clients: httpx in HTTP/1.1 mode,
``curl --http1.1`` and ``urllib.request`` (a requests-style blocking client; alexa_client posts JSON like this)."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest

from avsd.emulator.server import Emulator

from .conftest import client_for

pytestmark = pytest.mark.timeout(60)
README = Path(__file__).resolve().parents[2] / "README.md"


def h1_client(emu: Emulator) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(emu.ca_file))
    return httpx.AsyncClient(http1=True, http2=False, verify=ctx, base_url=emu.base_url, timeout=10.0)


async def test_httpx_http11_refresh_form_and_json(emu: Emulator) -> None:
    async with h1_client(emu) as h1:
        form = await h1.post(
            "/auth/o2/token", data={"grant_type": "refresh_token", "refresh_token": emu.refresh_token}
        )
        as_json = await h1.post(
            "/auth/O2/token", json={"grant_type": "refresh_token", "refresh_token": emu.refresh_token}
        )
    for reply in (form, as_json):
        assert reply.http_version == "HTTP/1.1"
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("application/json")
        body = reply.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 3600
        assert emu.lwa.is_valid_access_token(body["access_token"])
    assert [r.http_version for r in emu.records] == ["1.1", "1.1"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"grant_type": "refresh_token", "refresh_token": "Atzr|wrong"}, 400, "invalid_grant"),
        ({"grant_type": "password", "username": "u"}, 400, "unsupported_grant_type"),
        ({"refresh_token": "x"}, 400, "invalid_request"),
        ({"grant_type": "refresh_token"}, 400, "invalid_request"),
    ],
)
async def test_lwa_error_shapes_over_both_versions(
    emu: Emulator, body: dict[str, str], status: int, error: str
) -> None:
    async with h1_client(emu) as h1, client_for(emu) as h2:
        replies = [
            await h1.post("/auth/o2/token", json=body),
            await h1.post("/auth/o2/token", data=body),
            await h2.post("/auth/o2/token", json=body),
        ]
    for reply in replies:
        assert reply.status_code == status
        doc = reply.json()
        assert set(doc) == {"error", "error_description"} and doc["error"] == error


async def test_invalid_client_is_401_and_bad_json_is_invalid_request(tmp_path: Path) -> None:
    async with Emulator(cert_dir=tmp_path, client_id="amzn1.application-oa2-client.good") as emu, h1_client(
        emu
    ) as h1:
        wrong = await h1.post(
            "/auth/o2/token",
            json={"grant_type": "refresh_token", "refresh_token": emu.refresh_token, "client_id": "other"},
        )
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        broken = await h1.post(
            "/auth/o2/token", content=b'{"grant_type": ', headers={"content-type": "application/json"}
        )
        assert broken.status_code == 400 and broken.json()["error"] == "invalid_request"
        # The server is unaffected: the next request on the same connection works.
        ok = await h1.post(
            "/auth/o2/token",
            json={"grant_type": "refresh_token", "refresh_token": emu.refresh_token,
                  "client_id": "amzn1.application-oa2-client.good"},
        )
        assert ok.status_code == 200


def _curl(emu: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--http1.1", "--cacert", str(emu.ca_file), *args],
        capture_output=True, text=True, timeout=20, check=False,
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_http11_form_and_json(emu: Emulator) -> None:
    url = f"{emu.base_url}/auth/o2/token"
    form = await asyncio.to_thread(
        _curl, emu, "--write-out", "\n%{http_version} %{http_code}",
        "--data-urlencode", "grant_type=refresh_token", "--data-urlencode", f"refresh_token={emu.refresh_token}", url,
    )
    as_json = await asyncio.to_thread(
        _curl, emu, "--write-out", "\n%{http_version} %{http_code}", "-H", "content-type: application/json",
        "--data", json.dumps({"grant_type": "refresh_token", "refresh_token": emu.refresh_token}), url,
    )
    for result in (form, as_json):
        assert result.returncode == 0, result.stderr
        body, _, status = result.stdout.rpartition("\n")
        assert status == "1.1 200"
        assert json.loads(body)["token_type"] == "bearer"
    bad = await asyncio.to_thread(
        _curl, emu, "--write-out", "\n%{http_code}", "-H", "content-type: application/json",
        "--data", '{"grant_type": "refresh_token", "refresh_token": "nope"}', url,
    )
    body, _, status = bad.stdout.rpartition("\n")
    assert status == "400" and json.loads(body)["error"] == "invalid_grant"


def _urllib_post(url: str, ca_file: Path, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    request = urllib.request.Request(
        url, data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_urllib_posts_json_like_alexa_client(emu: Emulator) -> None:
    url = f"{emu.base_url}/auth/o2/token"
    status, doc = await asyncio.to_thread(
        _urllib_post, url, emu.ca_file, {"grant_type": "refresh_token", "refresh_token": emu.refresh_token}
    )
    assert status == 200 and emu.lwa.is_valid_access_token(doc["access_token"])
    status, doc = await asyncio.to_thread(
        _urllib_post, url, emu.ca_file, {"grant_type": "refresh_token", "refresh_token": "revoked"}
    )
    assert status == 400 and doc["error"] == "invalid_grant"


async def test_malformed_http11_request_is_refused_alone(emu: Emulator) -> None:
    ctx = ssl.create_default_context(cafile=str(emu.ca_file))
    ctx.set_alpn_protocols(["http/1.1"])
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port, ssl=ctx)
    try:
        writer.write(b"NOT A REQUEST\r\n\r\n")
        async with asyncio.timeout(5):
            data = await reader.read(4096)
        assert data.startswith(b"HTTP/1.1 400 ")
    finally:
        writer.close()
    async with h1_client(emu) as h1:
        ok = await h1.post(
            "/auth/o2/token", data={"grant_type": "refresh_token", "refresh_token": emu.refresh_token}
        )
        assert ok.status_code == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_readme_curl_json_example(emu: Emulator) -> None:
    """The README's `curl --http1.1 ... -d '{json}'` example, with its placeholders filled in."""
    import re
    import shlex

    readme = README.read_text()
    block = re.search(r"```sh\n(curl --http1\.1 .*?)\n```", readme, flags=re.S)
    assert block is not None
    command = block.group(1).replace("\\\n", " ")
    command = command.replace("<CA file>", str(emu.ca_file)).replace("<refresh token>", emu.refresh_token)
    command = command.replace("https://127.0.0.1:8443", emu.base_url)
    argv = shlex.split(command)
    result = await asyncio.to_thread(
        subprocess.run, [*argv, "--silent", "--show-error"], capture_output=True, text=True, timeout=20, check=False
    )
    assert result.returncode == 0, result.stderr
    assert emu.lwa.is_valid_access_token(json.loads(result.stdout)["access_token"])
    assert [r.http_version for r in emu.records] == ["1.1"]


async def test_oversized_lwa_body_is_refused_over_both_versions(emu: Emulator) -> None:
    big = {"grant_type": "refresh_token", "refresh_token": "x" * (70 * 1024)}
    async with h1_client(emu) as h1, client_for(emu) as h2:
        for client in (h1, h2):
            reply = await client.post("/auth/o2/token", data=big)
            assert reply.status_code == 413 and reply.json()["error"] == "invalid_request"
            ok = await client.post(
                "/auth/o2/token", data={"grant_type": "refresh_token", "refresh_token": emu.refresh_token}
            )
            assert ok.status_code == 200  # the connection and the server carry on


async def test_idle_http11_connection_is_closed() -> None:
    """A client that connects and sends nothing (or half a request) is dropped after the idle timeout."""
    from avsd.emulator.http1 import Http1Connection
    from avsd.emulator.replies import PlainRequest, PlainResponse

    async def never(request: PlainRequest) -> PlainResponse:
        raise AssertionError("no request should arrive")

    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await Http1Connection(reader, writer, never, max_body=1024, idle_timeout_s=0.2).run()
        closed.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /media/x HTTP/1.1\r\nHost: a\r\n")  # never finished
        async with asyncio.timeout(5):
            await closed.wait()
            assert await reader.read() == b""
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
