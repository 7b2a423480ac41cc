"""The HTTP boundary maps every httpx / httpcore / h2 / ssl / socket exception into avsd's error tree, ``from exc``.
(The same mapping meets the real exceptions in tests/avs/test_faults_boundary.py and the fault soaks.)"""

from __future__ import annotations

import ssl

import h2.exceptions
import httpcore
import httpx
import pytest

from avsd.avs import transport
from avsd.avs.http import HttpClient, http_errors
from avsd.errors import AvsConnectionError, ConnectionClosedError, StreamRefusedError

REQUEST = httpx.Request("GET", "https://avs.test/ping")


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.StreamConsumed(), StreamRefusedError),
        (transport.StreamRefused("goaway"), StreamRefusedError),
        (RuntimeError("Cannot send a request, as the client has been closed."), StreamRefusedError),
        (httpx.RemoteProtocolError("server disconnected", request=REQUEST), AvsConnectionError),
        (httpx.LocalProtocolError("bad header", request=REQUEST), AvsConnectionError),
        (httpx.PoolTimeout("pool", request=REQUEST), AvsConnectionError),
        (httpx.ReadTimeout("read", request=REQUEST), AvsConnectionError),
        (httpx.ReadError("reset", request=REQUEST), AvsConnectionError),
        (httpx.WriteError("broken pipe", request=REQUEST), AvsConnectionError),
        (httpx.ConnectError("refused", request=REQUEST), AvsConnectionError),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), AvsConnectionError),
        (httpx.InvalidURL("no host"), AvsConnectionError),
        (httpx.StreamClosed(), AvsConnectionError),
        (httpcore.ConnectionNotAvailable(), AvsConnectionError),
        (httpcore.ReadError("reset"), AvsConnectionError),
        (httpcore.PoolTimeout("pool"), AvsConnectionError),
        (h2.exceptions.ProtocolError("closed"), AvsConnectionError),
        (h2.exceptions.StreamClosedError(5), AvsConnectionError),
        (ssl.SSLError(1, "bad record mac"), AvsConnectionError),
        (ConnectionResetError(104, "reset"), AvsConnectionError),
    ],
)
def test_every_third_party_error_becomes_an_avs_error(raised: BaseException, expected: type[Exception]) -> None:
    with pytest.raises(expected) as caught, http_errors("GET https://avs.test/ping"):
        raise raised
    assert caught.value.__cause__ is raised
    assert "GET https://avs.test/ping" in str(caught.value)


def test_goaway_before_the_answer_is_connection_closed() -> None:
    import h2.events

    terminated = h2.events.ConnectionTerminated()
    with pytest.raises(ConnectionClosedError), http_errors("POST /events"):
        try:
            raise httpcore.RemoteProtocolError(terminated)
        except httpcore.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc  # what httpx's own mapping does


def test_other_errors_pass_unchanged() -> None:
    with pytest.raises(KeyError), http_errors("GET /"):
        raise KeyError("not a transport error")
    with pytest.raises(RuntimeError, match="unrelated"), http_errors("GET /"):
        raise RuntimeError("unrelated")


async def test_a_refused_connection_is_an_avs_error_from_the_client() -> None:
    async with HttpClient(timeout=5.0) as http:
        with pytest.raises(AvsConnectionError) as caught:
            await http.request("GET", "http://127.0.0.1:9/")  # discard port: nothing listens
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
