"""The emulator's Login with Amazon logic (protocol reference §2.1-2.3, §11.2), driven by a fake clock."""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from avsd.emulator.lwa import AUTH_CODE_LIFETIME_S, LwaReply, LwaServer, LwaSettings

REFRESH = "Atzr|configured"
CLIENT = "amzn1.application-oa2-client.test"
SECRET = "s3cret"
REDIRECT = "http://localhost:9000/callback/"


def scope_data(product_id: object = "avsd", **attributes: object) -> str:
    return json.dumps({"alexa:all": {"productID": product_id, "productInstanceAttributes": attributes}})


SCOPE_DATA = json.dumps(
    {"alexa:all": {"productID": "avsd", "productInstanceAttributes": {"deviceSerialNumber": "rpi-0001"}}}
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(clock: FakeClock, **kwargs: Any) -> LwaServer:
    options: dict[str, Any] = {"refresh_token": REFRESH, "poll_interval_s": 5.0, "clock": clock}
    options.update(kwargs)
    return LwaServer(**options)


def error_of(reply: LwaReply) -> str:
    assert reply.body is not None
    assert set(reply.body) == {"error", "error_description"}
    assert reply.body["error_description"]
    return str(reply.body["error"])


def assert_token_reply(reply: LwaReply, lifetime: float = 3600) -> tuple[str, str]:
    assert reply.status == 200
    assert reply.body is not None
    assert set(reply.body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert reply.body["token_type"] == "bearer"
    assert reply.body["expires_in"] == lifetime
    access, refresh = reply.body["access_token"], reply.body["refresh_token"]
    assert isinstance(access, str) and access.startswith("Atza|emu")
    assert isinstance(refresh, str) and refresh
    return access, refresh


def codepair_form(**overrides: str) -> dict[str, str]:
    form = {
        "response_type": "device_code",
        "client_id": CLIENT,
        "scope": "alexa:all",
        "scope_data": SCOPE_DATA,
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v != "<absent>"}


def new_pair(lwa: LwaServer) -> tuple[str, str]:
    reply = lwa.create_codepair(codepair_form())
    assert reply.status == 200
    assert reply.body is not None
    return str(reply.body["device_code"]), str(reply.body["user_code"])


def poll(lwa: LwaServer, device_code: str, user_code: str) -> LwaReply:
    return lwa.token({"grant_type": "device_code", "device_code": device_code, "user_code": user_code})


# -- refresh_token grant (§2.1) --------------------------------------------------------------------------

# (id, server options, form, expected status, expected error or None)
REFRESH_CASES: list[tuple[str, dict[str, Any], dict[str, str], int, str | None]] = [
    ("valid", {}, {"grant_type": "refresh_token", "refresh_token": REFRESH}, 200, None),
    ("valid-with-client-id", {"client_id": CLIENT},
     {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": CLIENT}, 200, None),
    ("client-id-not-checked-when-unconfigured", {},
     {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": "anything"}, 200, None),
    ("secret-optional-for-cbl-tokens", {"client_id": CLIENT, "client_secret": SECRET},
     {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": CLIENT}, 200, None),
    ("secret-matches", {"client_id": CLIENT, "client_secret": SECRET},
     {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": CLIENT, "client_secret": SECRET},
     200, None),
    ("unknown-refresh-token", {}, {"grant_type": "refresh_token", "refresh_token": "Atzr|nope"}, 400,
     "invalid_grant"),
    ("missing-refresh-token", {}, {"grant_type": "refresh_token"}, 400, "invalid_request"),
    ("empty-refresh-token", {}, {"grant_type": "refresh_token", "refresh_token": ""}, 400, "invalid_request"),
    ("wrong-client-id", {"client_id": CLIENT},
     {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": "other"}, 401, "invalid_client"),
    ("missing-client-id", {"client_id": CLIENT}, {"grant_type": "refresh_token", "refresh_token": REFRESH},
     401, "invalid_client"),
    ("wrong-secret", {"client_id": CLIENT, "client_secret": SECRET},
     {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": CLIENT, "client_secret": "x"},
     401, "invalid_client"),
    ("missing-grant-type", {}, {"refresh_token": REFRESH}, 400, "invalid_request"),
    ("unsupported-grant-type", {}, {"grant_type": "password", "refresh_token": REFRESH}, 400,
     "unsupported_grant_type"),
    ("client-credentials-unsupported", {}, {"grant_type": "client_credentials"}, 400,
     "unsupported_grant_type"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "form", "status", "error"), [c[1:] for c in REFRESH_CASES], ids=[c[0] for c in REFRESH_CASES]
)
def test_refresh_grant(options: dict[str, Any], form: dict[str, str], status: int, error: str | None) -> None:
    lwa = make(FakeClock(), **options)
    reply = lwa.token(form)
    assert reply.status == status
    assert reply.location is None
    if error is None:
        access, refresh = assert_token_reply(reply)
        assert refresh == REFRESH  # refresh does not rotate the token
        assert lwa.is_valid_access_token(access)
    else:
        assert error_of(reply) == error


def test_access_tokens_expire_by_the_clock() -> None:
    clock = FakeClock()
    lwa = make(clock, access_token_lifetime_s=100.0)
    first, _ = assert_token_reply(lwa.token({"grant_type": "refresh_token", "refresh_token": REFRESH}), 100)
    clock.advance(60)
    second, _ = assert_token_reply(lwa.token({"grant_type": "refresh_token", "refresh_token": REFRESH}), 100)
    assert first != second
    assert lwa.is_valid_access_token(first) and lwa.is_valid_access_token(second)
    clock.advance(40)  # first is exactly at its expiry
    assert not lwa.is_valid_access_token(first)
    assert lwa.is_valid_access_token(second)
    clock.advance(60)
    assert not lwa.is_valid_access_token(second)
    assert not lwa.is_valid_access_token("")
    assert not lwa.is_valid_access_token("Atza|emu-made-up")


def test_expire_access_tokens_fault() -> None:
    lwa = make(FakeClock())
    access, _ = assert_token_reply(lwa.token({"grant_type": "refresh_token", "refresh_token": REFRESH}))
    lwa.expire_access_tokens()
    assert not lwa.is_valid_access_token(access)
    # The refresh token still works, and new tokens are valid.
    fresh, _ = assert_token_reply(lwa.token({"grant_type": "refresh_token", "refresh_token": REFRESH}))
    assert lwa.is_valid_access_token(fresh)


def test_fractional_lifetime_is_sent_as_is() -> None:
    lwa = make(FakeClock(), access_token_lifetime_s=0.5)
    assert_token_reply(lwa.token({"grant_type": "refresh_token", "refresh_token": REFRESH}), 0.5)


# -- Code-Based Linking (§2.2) ---------------------------------------------------------------------------

CODEPAIR_BAD: list[tuple[str, dict[str, str], str]] = [
    ("wrong-response-type", codepair_form(response_type="code"), "invalid_request"),
    ("missing-response-type", codepair_form(response_type="<absent>"), "invalid_request"),
    ("missing-client-id", codepair_form(client_id="<absent>"), "invalid_request"),
    ("missing-scope", codepair_form(scope="<absent>"), "invalid_request"),
    ("scope-without-alexa-all", codepair_form(scope="profile"), "invalid_request"),
    ("scope-alexa-all-prefix-only", codepair_form(scope="alexa:allx"), "invalid_request"),
    ("missing-scope-data", codepair_form(scope_data="<absent>"), "invalid_request"),
    ("scope-data-not-json", codepair_form(scope_data="{productID"), "invalid_request"),
    ("scope-data-not-object", codepair_form(scope_data="[]"), "invalid_request"),
    ("scope-data-no-alexa-all", codepair_form(scope_data='{"productID": "x"}'), "invalid_request"),
    (
        "scope-data-no-product-id",
        codepair_form(scope_data='{"alexa:all": {"productInstanceAttributes": {"deviceSerialNumber": "1"}}}'),
        "invalid_request",
    ),
    (
        "scope-data-empty-product-id",
        codepair_form(scope_data=scope_data("", deviceSerialNumber="1")),
        "invalid_request",
    ),
    (
        "scope-data-no-attributes",
        codepair_form(scope_data='{"alexa:all": {"productID": "p"}}'),
        "invalid_request",
    ),
    (
        "scope-data-no-serial",
        codepair_form(scope_data='{"alexa:all": {"productID": "p", "productInstanceAttributes": {}}}'),
        "invalid_request",
    ),
    (
        "scope-data-numeric-serial",
        codepair_form(scope_data=scope_data("p", deviceSerialNumber=1)),
        "invalid_request",
    ),
    ("deeply-nested-scope-data", codepair_form(scope_data="[" * 100_000), "invalid_request"),
]


@pytest.mark.parametrize(("form", "error"), [c[1:] for c in CODEPAIR_BAD], ids=[c[0] for c in CODEPAIR_BAD])
def test_create_codepair_rejects(form: dict[str, str], error: str) -> None:
    reply = make(FakeClock()).create_codepair(form)
    assert reply.status == 400
    assert error_of(reply) == error


def test_create_codepair_checks_configured_client_id() -> None:
    lwa = make(FakeClock(), client_id=CLIENT)
    reply = lwa.create_codepair(codepair_form(client_id="other"))
    assert (reply.status, error_of(reply)) == (401, "invalid_client")
    assert lwa.create_codepair(codepair_form()).status == 200


@pytest.mark.parametrize("scope", ["alexa:all", "alexa:all profile:user_id", "profile alexa:all"])
def test_create_codepair_reply(scope: str) -> None:
    lwa = make(
        FakeClock(), code_pair_lifetime_s=600.0, poll_interval_s=30.0, verification_uri="https://x/code"
    )
    reply = lwa.create_codepair(codepair_form(scope=scope))
    assert reply.status == 200
    assert reply.body is not None
    assert set(reply.body) == {"device_code", "user_code", "verification_uri", "expires_in", "interval"}
    assert reply.body["verification_uri"] == "https://x/code"
    assert reply.body["expires_in"] == 600
    assert reply.body["interval"] == 30
    assert isinstance(reply.body["device_code"], str) and len(reply.body["device_code"]) >= 20
    assert isinstance(reply.body["user_code"], str) and len(reply.body["user_code"]) == 6


def test_codepairs_are_distinct() -> None:
    lwa = make(FakeClock())
    pairs = [new_pair(lwa) for _ in range(50)]
    assert len({d for d, _ in pairs}) == 50
    assert len({u for _, u in pairs}) == 50


# A CBL session as a script: (action, seconds to advance before it, expected error or "ok").
# Actions: "poll", "approve", "approve-other", "poll-wrong-user-code".
CBL_SCRIPTS: list[tuple[str, list[tuple[str, float, str]]]] = [
    ("pending-then-approved", [
        ("poll", 0, "authorization_pending"),
        ("poll", 5, "authorization_pending"),
        ("approve", 1, "ok"),
        ("poll", 4, "ok"),
        ("poll", 5, "invalid_code_pair"),  # single use
    ]),
    ("approved-before-first-poll", [("approve", 0, "ok"), ("poll", 1, "ok")]),
    ("too-fast", [
        ("poll", 0, "authorization_pending"),
        ("poll", 4.9, "slow_down"),
        ("poll", 4.9, "slow_down"),  # a refused poll restarts the interval
        ("poll", 5.0, "authorization_pending"),
    ]),
    ("slow-down-even-when-approved", [
        ("poll", 0, "authorization_pending"),
        ("approve", 1, "ok"),
        ("poll", 1, "slow_down"),
        ("poll", 5, "ok"),
    ]),
    ("expired", [("poll", 0, "authorization_pending"), ("poll", 600, "invalid_code_pair")]),
    ("expired-even-if-approved", [("approve", 0, "ok"), ("poll", 600, "invalid_code_pair")]),
    ("approve-after-expiry-fails", [("approve", 601, "rejected"), ("poll", 0, "invalid_code_pair")]),
    ("just-before-expiry", [("approve", 0, "ok"), ("poll", 599.9, "ok")]),
    ("other-pair-approved", [("approve-other", 0, "ok"), ("poll", 0, "authorization_pending")]),
    ("wrong-user-code", [("poll-wrong-user-code", 0, "invalid_code_pair")]),
]  # fmt: skip


@pytest.mark.parametrize("script", [c[1] for c in CBL_SCRIPTS], ids=[c[0] for c in CBL_SCRIPTS])
def test_cbl_polling(script: list[tuple[str, float, str]]) -> None:
    clock = FakeClock()
    lwa = make(clock, code_pair_lifetime_s=600.0, poll_interval_s=5.0)
    device_code, user_code = new_pair(lwa)
    _other_device, other_user = new_pair(lwa)
    for step, (action, wait, expected) in enumerate(script):
        clock.advance(wait)
        if action == "approve":
            assert lwa.approve(user_code.lower()) is (expected == "ok"), step
            continue
        if action == "approve-other":
            assert lwa.approve(other_user), step
            continue
        code = user_code if action == "poll" else "WRONG1"
        reply = poll(lwa, device_code, code)
        if expected == "ok":
            access, refresh = assert_token_reply(reply)
            assert lwa.is_valid_access_token(access)
            # The refresh token minted for this device now works for the refresh grant (§2.1).
            again = lwa.token({"grant_type": "refresh_token", "refresh_token": refresh})
            assert_token_reply(again)
        else:
            assert (reply.status, error_of(reply)) == (400, expected), step


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "device_code"},
        {"grant_type": "device_code", "device_code": "x"},
        {"grant_type": "device_code", "user_code": "x"},
        {"grant_type": "device_code", "device_code": "", "user_code": "x"},
    ],
)
def test_device_code_grant_missing_fields(form: dict[str, str]) -> None:
    reply = make(FakeClock()).token(form)
    assert (reply.status, error_of(reply)) == (400, "invalid_request")


def test_unknown_device_code() -> None:
    reply = poll(make(FakeClock()), "no-such-code", "ABCDEF")
    assert (reply.status, error_of(reply)) == (400, "invalid_code_pair")


def test_auto_approve_and_approve_all() -> None:
    clock = FakeClock()
    auto = make(clock, auto_approve=True)
    device_code, user_code = new_pair(auto)
    assert_token_reply(poll(auto, device_code, user_code))

    lwa = make(clock, code_pair_lifetime_s=10.0)
    old = new_pair(lwa)
    clock.advance(11)
    pairs = [new_pair(lwa) for _ in range(3)]
    assert lwa.approve(pairs[0][1])
    assert lwa.approve_all() == 2  # the expired pair and the already approved one do not count
    assert lwa.approve_all() == 0
    for device_code, user_code in pairs:
        assert_token_reply(poll(lwa, device_code, user_code))
    assert error_of(poll(lwa, *old)) == "invalid_code_pair"
    assert not lwa.approve("NOSUCH")


# -- authorization-code grant (§2.3) ---------------------------------------------------------------------


def authorize_query(**overrides: str) -> dict[str, str]:
    query = {
        "client_id": CLIENT,
        "scope": "alexa:all",
        "scope_data": SCOPE_DATA,
        "response_type": "code",
        "redirect_uri": REDIRECT,
    }
    query.update(overrides)
    return {k: v for k, v in query.items() if v != "<absent>"}


def redirect_params(reply: LwaReply, base: str = REDIRECT) -> dict[str, list[str]]:
    assert reply.status == 302
    assert reply.body is None
    assert reply.location is not None
    assert reply.location.startswith(base)
    return parse_qs(urlsplit(reply.location).query)


def test_authorize_redirects_with_code_and_scope() -> None:
    reply = make(FakeClock()).authorize(authorize_query())
    assert reply.location is not None
    assert "&scope=alexa%3Aall" in reply.location
    assert reply.location.startswith(REDIRECT + "?code=")
    params = redirect_params(reply)
    assert set(params) == {"code", "scope"}


def test_authorize_keeps_state_and_existing_query() -> None:
    reply = make(FakeClock()).authorize(
        authorize_query(redirect_uri="http://127.0.0.1:5050/code?x=1", state="s1")
    )
    params = redirect_params(reply, "http://127.0.0.1:5050/code?x=1&")
    assert params["state"] == ["s1"]
    assert params["x"] == ["1"]


# Problems that must not redirect (the redirect target is untrusted): 4xx JSON.
AUTHORIZE_REFUSED: list[tuple[str, dict[str, str], int, str]] = [
    ("missing-redirect-uri", authorize_query(redirect_uri="<absent>"), 400, "invalid_request"),
    ("relative-redirect-uri", authorize_query(redirect_uri="/callback"), 400, "invalid_request"),
    ("non-http-redirect-uri", authorize_query(redirect_uri="javascript:alert(1)"), 400, "invalid_request"),
    ("fragment-redirect-uri", authorize_query(redirect_uri="http://localhost/cb#x"), 400, "invalid_request"),
    ("missing-client-id", authorize_query(client_id="<absent>"), 400, "invalid_request"),
]
# Problems reported back to the client through the redirect (RFC 6749 §4.1.2.1).
AUTHORIZE_REDIRECTED: list[tuple[str, dict[str, str], str]] = [
    ("wrong-response-type", authorize_query(response_type="token"), "unsupported_response_type"),
    ("missing-response-type", authorize_query(response_type="<absent>"), "unsupported_response_type"),
    ("missing-scope", authorize_query(scope="<absent>"), "invalid_request"),
    ("bad-scope-data", authorize_query(scope_data="{}"), "invalid_request"),
]


@pytest.mark.parametrize(
    ("query", "status", "error"), [c[1:] for c in AUTHORIZE_REFUSED], ids=[c[0] for c in AUTHORIZE_REFUSED]
)
def test_authorize_refused(query: dict[str, str], status: int, error: str) -> None:
    reply = make(FakeClock()).authorize(query)
    assert reply.location is None
    assert (reply.status, error_of(reply)) == (status, error)


@pytest.mark.parametrize(
    ("query", "error"), [c[1:] for c in AUTHORIZE_REDIRECTED], ids=[c[0] for c in AUTHORIZE_REDIRECTED]
)
def test_authorize_error_redirect(query: dict[str, str], error: str) -> None:
    params = redirect_params(make(FakeClock()).authorize({**query, "state": "st"}))
    assert params["error"] == [error]
    assert params["state"] == ["st"]
    assert "code" not in params


def test_authorize_checks_configured_client_id() -> None:
    reply = make(FakeClock(), client_id=CLIENT).authorize(authorize_query(client_id="other"))
    assert reply.location is None
    assert (reply.status, error_of(reply)) == (401, "invalid_client")


def exchange_form(issued_code: str, **overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": issued_code,
        "redirect_uri": REDIRECT,
        "client_id": CLIENT,
        "client_secret": SECRET,
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v != "<absent>"}


# (id, server options, form overrides, seconds to wait, expected status, expected error or None)
EXCHANGE_CASES: list[tuple[str, dict[str, Any], dict[str, str], float, int, str | None]] = [
    ("ok", {}, {}, 0, 200, None),
    ("ok-with-configured-client", {"client_id": CLIENT, "client_secret": SECRET}, {}, 0, 200, None),
    ("ok-no-secret-when-unconfigured", {}, {"client_secret": "<absent>"}, 0, 200, None),
    ("redirect-uri-mismatch", {}, {"redirect_uri": "http://localhost:9000/other/"}, 0, 400, "invalid_grant"),
    ("other-client", {}, {"client_id": "other"}, 0, 400, "invalid_grant"),
    ("unknown-code", {}, {"code": "made-up"}, 0, 400, "invalid_grant"),
    ("expired-code", {}, {}, AUTH_CODE_LIFETIME_S, 400, "invalid_grant"),
    ("missing-code", {}, {"code": "<absent>"}, 0, 400, "invalid_request"),
    ("missing-redirect-uri", {}, {"redirect_uri": "<absent>"}, 0, 400, "invalid_request"),
    ("missing-client-id", {}, {"client_id": "<absent>"}, 0, 400, "invalid_request"),
    ("missing-secret", {"client_id": CLIENT, "client_secret": SECRET}, {"client_secret": "<absent>"}, 0, 401,
     "invalid_client"),
    ("wrong-secret", {"client_id": CLIENT, "client_secret": SECRET}, {"client_secret": "nope"}, 0, 401,
     "invalid_client"),
    ("wrong-client-configured", {"client_id": CLIENT}, {"client_id": "other"}, 0, 401, "invalid_client"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "overrides", "wait", "status", "error"),
    [c[1:] for c in EXCHANGE_CASES],
    ids=[c[0] for c in EXCHANGE_CASES],
)
def test_authorization_code_grant(
    options: dict[str, Any], overrides: dict[str, str], wait: float, status: int, error: str | None
) -> None:
    clock = FakeClock()
    lwa = make(clock, **options)
    code = redirect_params(lwa.authorize(authorize_query()))["code"][0]
    clock.advance(wait)
    reply = lwa.token(exchange_form(code, **overrides))
    assert reply.status == status
    if error is None:
        access, refresh = assert_token_reply(reply)
        assert lwa.is_valid_access_token(access)
        assert refresh != REFRESH
        assert_token_reply(
            lwa.token({"grant_type": "refresh_token", "refresh_token": refresh, "client_id": CLIENT})
        )
    else:
        assert error_of(reply) == error


def test_authorization_code_is_single_use() -> None:
    lwa = make(FakeClock())
    code = redirect_params(lwa.authorize(authorize_query()))["code"][0]
    assert_token_reply(lwa.token(exchange_form(code)))
    assert error_of(lwa.token(exchange_form(code))) == "invalid_grant"
    # A failed attempt also burns the code.
    code = redirect_params(lwa.authorize(authorize_query()))["code"][0]
    assert error_of(lwa.token(exchange_form(code, redirect_uri="http://localhost/x"))) == "invalid_grant"
    assert error_of(lwa.token(exchange_form(code))) == "invalid_grant"


# -- construction ----------------------------------------------------------------------------------------


def test_from_settings_and_refresh_token_property() -> None:
    clock = FakeClock()
    settings = LwaSettings(access_token_lifetime_s=50.0, poll_interval_s=1.0, auto_approve=True)
    lwa = LwaServer.from_settings(settings, refresh_token=REFRESH, clock=clock)
    assert lwa.refresh_token == REFRESH
    assert_token_reply(lwa.token({"grant_type": "refresh_token", "refresh_token": REFRESH}), 50)
    device_code, user_code = new_pair(lwa)
    assert_token_reply(poll(lwa, device_code, user_code), 50)
    for f in dataclasses.fields(LwaSettings):
        assert f.metadata.get("help"), f.name
