"""Pure parts: scenario loading and matching, payload rendering, envelope checks, fault selection, TLS."""

from __future__ import annotations

import datetime
import json
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from avsd.emulator.faults import Fault, FaultBook, FaultKind, FaultTarget, fault_from_obj, matches
from avsd.emulator.replies import encode_downchannel_close, encode_push, validate_event
from avsd.emulator.scenario import Rule, RuleBook, load_scenario, render_payload, scenario_from_obj
from avsd.emulator.tls import make_self_signed, server_ssl_context
from avsd.errors import ConfigError

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_scenarios_load(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.rules or scenario.timeline


def test_basic_scenario_content() -> None:
    scenario = load_scenario(SCENARIOS / "basic.toml")
    rule = scenario.rules[0]
    assert rule.match == "SpeechRecognizer.Recognize"
    assert [d.qualified_name for d in rule.directives] == ["TemplateRuntime.RenderTemplate", "SpeechSynthesizer.Speak"]
    assert rule.directives[1].speech


def test_media_playlists_and_media_urls() -> None:
    scenario = load_scenario(SCENARIOS / "music-playlist.toml")
    assert scenario.media_playlists == (("radio.pls", ("media:missing.mp3", "media:tone/440-8.mp3")),)
    rendered = render_payload(
        {"stream": {"url": "media:radio.pls", "other": "http://x/y.mp3"}, "n": [1, "media:tone/440-1.mp3"]},
        datetime.datetime.now(datetime.UTC),
        None,
        lambda ref: "https://h/" + ref.removeprefix("media:"),
    )
    assert rendered == {"stream": {"url": "https://h/radio.pls", "other": "http://x/y.mp3"},
                        "n": [1, "https://h/tone/440-1.mp3"]}


@pytest.mark.parametrize(
    ("media", "key"),
    [
        ({"playlists": {"radio.mp3": ["media:x.mp3"]}}, "media.playlists.radio.mp3"),
        ({"playlists": {"a.pls": []}}, "media.playlists.a.pls"),
        ({"playlists": {"a.pls": [1]}}, "media.playlists.a.pls"),
        ({"playlists": ["a.pls"]}, "media.playlists"),
        ({"other": 1}, "media"),
    ],
)
def test_bad_media_tables_name_the_key(media: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        scenario_from_obj({"media": media})
    assert info.value.key == key


def test_json_and_toml_are_the_same_model(tmp_path: Path) -> None:
    doc = {
        "reply_text": "hi",
        "rule": [{"match": "*", "times": 2, "status": 503, "fault": {"kind": "stall", "seconds": 1}}],
        "timeline": [{"at_s": 2, "fault": "goaway"}, {"at_s": 1, "namespace": "A", "name": "B"}],
    }
    (tmp_path / "s.json").write_text(json.dumps(doc))
    (tmp_path / "s.toml").write_text(
        'reply_text = "hi"\n[[rule]]\nmatch = "*"\ntimes = 2\nstatus = 503\n'
        'fault = { kind = "stall", seconds = 1 }\n'
        '[[timeline]]\nat_s = 2\nfault = "goaway"\n[[timeline]]\nat_s = 1\nnamespace = "A"\nname = "B"\n'
    )
    a, b = load_scenario(tmp_path / "s.json"), load_scenario(tmp_path / "s.toml")
    assert a == b
    assert [t.at_s for t in a.timeline] == [1.0, 2.0]  # sorted
    assert a.rules[0].fault == Fault(FaultKind.STALL, seconds=1)


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"rules": []}, "scenario"),
        ({"rule": [{"match": "*", "times": 0}]}, "rule[0].times"),
        ({"rule": [{"status": 302}]}, "rule[0].status"),
        ({"rule": [{"delay_s": -1}]}, "rule[0].delay_s"),
        ({"rule": [{"directive": [{"namespace": "A"}]}]}, "rule[0].directive[0]"),
        (
            {"rule": [{"directive": [{"namespace": "A", "name": "B", "payload": 3}]}]},
            "rule[0].directive[0].payload",
        ),
        ({"rule": [{"fault": "explode"}]}, "rule[0].fault"),
        ({"rule": [{"fault": {"kind": "status", "status": 200}}]}, "rule[0].fault"),
        ({"timeline": [{"at_s": 1, "fault": "goaway", "name": "x"}]}, "timeline[0]"),
        ({"reply_text": 5}, "reply_text"),
    ],
)
def test_bad_scenarios_name_the_key(doc: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        scenario_from_obj(doc)
    assert info.value.key == key


def test_bad_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("a: 1")
    with pytest.raises(ConfigError):
        load_scenario(tmp_path / "x.yaml")
    (tmp_path / "x.toml").write_text("[[rule]\n")
    with pytest.raises(ConfigError):
        load_scenario(tmp_path / "x.toml")
    with pytest.raises(ConfigError):
        load_scenario(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "A.B", True),
        ("A.B", "A.B", True),
        ("A.B", "A.C", False),
        ("A.*", "A.C", True),
        ("A.*", "AB.C", False),
    ],
)
def test_matches(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected


def test_rulebook_times_and_priority() -> None:
    once = Rule(match="A.B", times=1, status=500)
    always = Rule(match="*", status=204)
    book = RuleBook([once, always])
    assert book.take("A.B") is once
    assert book.take("A.B") is always
    assert book.take("X.Y") is always
    first = Rule(match="X.Y", status=429)
    book.add_first(first)
    assert book.take("X.Y") is first


def test_response_status_defaults() -> None:
    from avsd.emulator.scenario import DirectiveSpec

    assert Rule().response_status() == 204
    assert Rule(directives=(DirectiveSpec("A", "B"),)).response_status() == 200
    assert Rule(status=503).response_status() == 503


def test_render_payload_relative_times() -> None:
    now = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)
    out = render_payload({"a": "+2s", "b": ["+0.5s", "x+1s"], "c": {"d": "+60s"}, "e": 3}, now)
    assert out == {
        "a": "2024-05-01T12:00:02+0000",
        "b": ["2024-05-01T12:00:00+0000", "x+1s"],
        "c": {"d": "2024-05-01T12:01:00+0000"},
        "e": 3,
    }


def _event(ns: str, name: str, **header: Any) -> dict[str, Any]:
    return {"event": {"header": {"namespace": ns, "name": name, "messageId": "m", **header}, "payload": {}}}


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (_event("System", "UserInactivityReport"), None),
        ({**_event("System", "SynchronizeState"), "context": []}, None),
        (_event("System", "SynchronizeState"), "context"),
        ({**_event("SpeechRecognizer", "Recognize", dialogRequestId="d"), "context": []}, None),
        ({**_event("SpeechRecognizer", "Recognize"), "context": []}, "dialogRequestId"),
        (_event("SpeechRecognizer", "Recognize", dialogRequestId="d"), "context"),
        (_event("PlaybackController", "NextCommandIssued"), "context"),
        ({**_event("A", "B"), "context": {}}, "array"),
        ({"event": {"header": {"namespace": "A", "name": "B"}}}, "messageId"),
        ({"event": {"header": {"namespace": "A", "name": "B", "messageId": ""}}}, None),  # alexa_client quirk
        ({"event": {"header": {"namespace": "", "name": "B", "messageId": "m"}}}, "namespace"),
        ({"event": {"header": {"namespace": "A", "name": "B", "messageId": "m"}, "payload": []}}, "payload"),
        ({"context": []}, "event"),
        ([], "object"),
    ],
)
def test_validate_event(doc: Any, problem: str | None) -> None:
    result = validate_event(doc)
    if problem is None:
        assert result is None
    else:
        assert result is not None and problem in result


def test_fault_book_consumes_and_filters() -> None:
    book = FaultBook()
    book.arm(Fault(FaultKind.STATUS, FaultTarget.PING, status=503, count=2))
    book.arm(Fault(FaultKind.TRICKLE))
    assert book.take(FaultTarget.EVENT, "A.B", frozenset({FaultKind.STATUS})) is None
    assert book.take(FaultTarget.PING) is not None
    assert book.take(FaultTarget.PING) is not None
    assert book.take(FaultTarget.PING) is None
    trickle = book.take(FaultTarget.EVENT, "A.B")
    assert trickle is not None and trickle.kind is FaultKind.TRICKLE


def test_fault_validation() -> None:
    assert Fault(FaultKind.NO_PING_ANSWER).target is FaultTarget.PING
    assert Fault(FaultKind.GOAWAY).immediate
    assert Fault(FaultKind.RST_STREAM, FaultTarget.DOWNCHANNEL).immediate
    assert not Fault(FaultKind.RST_STREAM).immediate
    with pytest.raises(ValueError):
        Fault(FaultKind.STATUS, status=302)
    with pytest.raises(ValueError):
        Fault(FaultKind.TRICKLE, chunk_bytes=0)
    with pytest.raises(ConfigError):
        fault_from_obj({"kind": "status", "colour": "red"})


def test_downchannel_framing_parses_promptly() -> None:
    from avsd.avs.multipart import BodyEnd, MultipartParser, PartEnd

    parser = MultipartParser("------abcde123")
    events = parser.feed(encode_push(True, b'{"directive":{}}', {"x": b"\x00"}))
    # Both parts complete in the same feed: no waiting for the next directive to end a part.
    assert sum(isinstance(e, PartEnd) for e in events) == 2
    events = parser.feed(encode_downchannel_close(False))
    assert isinstance(events[-1], BodyEnd)
    untouched = MultipartParser("------abcde123")
    assert isinstance(untouched.feed(encode_downchannel_close(True))[-1], BodyEnd)


def test_self_signed_cert(tmp_path: Path) -> None:
    cert_path, key_path = make_self_signed(tmp_path, ("localhost", "127.0.0.1", "::1", "avs.test"))
    assert key_path.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "avs.test"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=1) < lifetime < datetime.timedelta(days=3651)
    # Reused while still valid and covering the hosts; regenerated for new hosts.
    assert make_self_signed(tmp_path, ("localhost",))[0].read_bytes() == cert_path.read_bytes()
    before = cert_path.read_bytes()
    make_self_signed(tmp_path, ("other.test",))
    assert cert_path.read_bytes() != before
    ctx = server_ssl_context(*make_self_signed(tmp_path))
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_a_reused_cert_needs_no_cryptography(tmp_path: Path) -> None:
    # cryptography costs the daemon 8.5 MiB of RSS: reusing the pair on disk reads the sidecar, not the certificate.
    cert_path, _ = make_self_signed(tmp_path)
    check = (
        "import sys; from pathlib import Path; from avsd.emulator.tls import make_self_signed; "
        f"make_self_signed(Path({str(tmp_path)!r})); print('cryptography' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "False", run.stderr
    # A sidecar that does not describe this certificate file (its SHA-256 differs) is not trusted: the
    # certificate itself is read, found reusable, and the sidecar written anew.
    sidecar = tmp_path / "emulator-cert.json"
    stale = json.loads(sidecar.read_text())
    changed = cert_path.read_bytes() + b"\n"  # the same certificate, another file
    cert_path.write_bytes(changed)
    make_self_signed(tmp_path)
    assert cert_path.read_bytes() == changed
    assert json.loads(sidecar.read_text())["sha256"] != stale["sha256"]
    # A sidecar saying the certificate expires tomorrow: a new one is made.
    record = json.loads(sidecar.read_text())
    record["not_after"] = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=12)).isoformat()
    sidecar.write_text(json.dumps(record))
    make_self_signed(tmp_path)
    assert cert_path.read_bytes() != changed
    # A sidecar that is not what avsd writes is not trusted either (the certificate is read instead).
    for broken in ("{", '{"sha256": 1}', json.dumps({**json.loads(sidecar.read_text()), "not_after": "2099-01-01"})):
        sidecar.write_text(broken)
        before = cert_path.read_bytes()
        make_self_signed(tmp_path)
        assert cert_path.read_bytes() == before and json.loads(sidecar.read_text())["not_after"].endswith("+00:00")
