"""Defect 7: bearer tokens never reach logs, even with the root logger at DEBUG (real requests via the emulator)."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from avsd.avs.messages import Event
from avsd.emulator.server import Emulator
from avsd.logredact import PROTOCOL_LOGGERS, RedactingFilter, protect, redact
from avsd.systemd import journal_handler
from tests.avs.conftest import connected_device


@pytest.fixture
def root_at_debug() -> Iterator[io.StringIO]:
    """What an embedding program does: root logger at DEBUG with its own handler; protocol loggers untouched."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    avsd_logger = logging.getLogger("avsd")  # an earlier `avsd` CLI call in this process configured it
    saved = root.level, {name: logging.getLogger(name).level for name in PROTOCOL_LOGGERS}
    saved_avsd = avsd_logger.handlers[:], avsd_logger.propagate, avsd_logger.level
    avsd_logger.handlers[:], avsd_logger.propagate = [], True
    avsd_logger.setLevel(logging.NOTSET)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in PROTOCOL_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)
        avsd_logger.handlers[:], avsd_logger.propagate = saved_avsd[0], saved_avsd[1]
        avsd_logger.setLevel(saved_avsd[2])


async def _talk(tmp_path: Path) -> list[str]:
    """A real refresh, downchannel, event and ping through the emulator; the secrets that crossed the wire."""
    async with Emulator(cert_dir=tmp_path / "certs") as emulator, connected_device(tmp_path, emulator) as device:
        async with asyncio.timeout(10):
            await device.client.send_event(Event.new("Speaker", "VolumeChanged", {"volume": 5, "muted": False}))
            await device.client.ping()
            token = await device.tokens.get_token()
        return [token, emulator.refresh_token]


@pytest.mark.timeout(30)
async def test_root_logger_at_debug_prints_no_token(tmp_path: Path, root_at_debug: io.StringIO) -> None:
    secrets = await _talk(tmp_path)
    text = root_at_debug.getvalue()
    assert "event Speaker.VolumeChanged" in text and "downchannel open" in text  # the capture saw avsd's DEBUG
    for secret in secrets:
        assert secret not in text
    assert "Atza|" not in text and "Atzr|" not in text
    assert not [line for line in text.splitlines() if line.startswith(("hpack ", "h2.", "hpack."))]


@pytest.mark.timeout(30)
async def test_avsd_handler_drops_protocol_debug_even_when_the_program_enables_it(
    tmp_path: Path, root_at_debug: io.StringIO
) -> None:
    # The program chose DEBUG for hpack itself: avsd leaves that alone, but its own handlers never print them.
    logging.getLogger("hpack").setLevel(logging.DEBUG)
    ours = io.StringIO()
    handler = protect(logging.StreamHandler(ours))
    logging.getLogger().addHandler(handler)
    try:
        secrets = await _talk(tmp_path)
    finally:
        logging.getLogger().removeHandler(handler)
    theirs, text = root_at_debug.getvalue(), ours.getvalue()
    assert "authorization" in theirs.lower()  # hpack did log headers (to the program's own handler)
    assert "event Speaker.VolumeChanged" in text
    for secret in secrets:
        assert secret not in text
    assert "Atza|" not in text and "authorization" not in text.lower()


def test_setup_logging_and_journal_handlers_redact(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from avsd.cli import setup_logging

    avsd_logger = logging.getLogger("avsd")
    monkeypatch.setattr(avsd_logger, "handlers", [])  # setup_logging replaces them; restored after the test
    monkeypatch.setattr(avsd_logger, "propagate", True)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    level_before = avsd_logger.level
    try:
        setup_logging("debug", debug=True)
        log = logging.getLogger("avsd.test")
        log.info("refresh answered %s", '{"access_token":"Atza|abc","refresh_token":"Atzr|def","expires_in":3600}')
        try:
            raise RuntimeError("header authorization: Bearer Atza|in-a-traceback")
        except RuntimeError:
            log.exception("request failed")
    finally:
        avsd_logger.setLevel(level_before)
    err = capsys.readouterr().err
    assert "Atza|" not in err and "Atzr|" not in err
    assert '"access_token":"<redacted>"' in err and "Bearer <redacted>" in err
    journal = journal_handler({"JOURNAL_STREAM": "8:12345"})
    assert journal is not None
    assert any(isinstance(f, RedactingFilter) for f in journal.filters)


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("Decoded (b'authorization', b'Bearer Atza|IwEBIabc.def'), consumed 5", "Atza|IwEBIabc.def"),
        ('{"authorization": "Bearer tok.123", "x-amz-access-token": "tok.123"}', "tok.123"),
        ("grant_type=refresh_token&refresh_token=Atzr|s3&client_id=c&client_secret=topsecret", "topsecret"),
        ("Authorization: Basic QUN4eDp0b2tlbg==", "QUN4eDp0b2tlbg=="),
        ("device_code=dc-42 user_code=ABC", "dc-42"),
        ("a loose Atzr|refresh-token in text", "Atzr|refresh-token"),
    ],
)
def test_redact(line: str, secret: str) -> None:
    clean = redact(line)
    assert secret not in clean and "<redacted>" in clean
    assert redact(clean) == clean  # two protected handlers may see the same record


@pytest.mark.timeout(30)
async def test_a_program_keeping_root_at_warning_gets_no_new_protocol_lines(tmp_path: Path) -> None:
    """Raising the protocol loggers must not make them louder: httpx's INFO request lines stay out of a root
    logger at WARNING (an explicit INFO level on 'httpx' let them through)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in PROTOCOL_LOGGERS}
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in PROTOCOL_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    try:
        await _talk(tmp_path)
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)
    assert "HTTP Request" not in out.getvalue()


def test_entry_points_that_use_basic_config_protect_the_root_handlers() -> None:
    """`python -m avsd.emulator.cli --debug` configures the root logger; its handler redacts too."""
    from avsd.logredact import protect_root_handlers

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        protect_root_handlers()
        logging.getLogger("embedding.program").warning("client sent authorization: Bearer Atza|from-a-client")
        logging.getLogger("hpack.hpack").warning("Decoded (b'authorization', b'Bearer Atza|x')")
        logging.getLogger("hpack.hpack").debug("Decoded (b'authorization', b'Bearer Atza|y')")
    finally:
        root.removeHandler(handler)
    text = out.getvalue()
    assert "Atza|" not in text
    assert text.count("Bearer <redacted>") == 2  # WARNING records are kept (redacted); the DEBUG one is dropped
