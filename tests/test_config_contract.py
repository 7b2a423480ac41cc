"""The exit-78 contract: every bad config or credentials file -> one line naming the key, exit 78, no traceback.

Reproducers for issue 8 defect 4: invalid UTF-8 and 5,000-deep nesting used to end in a traceback and exit 1
(systemd then restarts in a loop); ``backoff_s = []`` passed ``avsd config --check`` and then killed ``avsd run``;
nan, inf, negative back-off and zero/negative timeouts were accepted.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avsd.avs.backoff import Backoff
from avsd.avs.credentials import load_credentials
from avsd.cli import EXIT_CONFIG, main
from avsd.config import load_config, parse_config
from avsd.errors import ConfigError, CredentialsError
from avsd.settings import BoundError, check_bounds, describe, setting

DEEP = 5000
DEEP_JSON = 100_000
ROOT = Path(__file__).resolve().parent.parent

# (file bytes, the key the one line must start with, words it must contain)
BAD_CONFIGS: list[tuple[bytes, str, str]] = [
    (b"[avs]\nendpoint = \"\xff\xfe\"\n", "", "not valid UTF-8"),
    (b"x = " + b"[" * DEEP + b"]" * DEEP + b"\n", "", "nested too deeply"),
    (b"x = " + b"{a = " * DEEP + b"1" + b"}" * DEEP + b"\n", "", "nested too deeply"),
    (b"[avs]\nbackoff_s = " + b"[" * 200 + b"]" * 200 + b"\n", "avs.backoff_s", "expected list of number"),
    (b"[avs]\nbackoff_s = []\n", "avs.backoff_s", "at least 1 item"),
    (b"[avs]\nbackoff_s = [-1.0]\n", "avs.backoff_s", "greater than 0.0"),
    (b"[avs]\nbackoff_s = [1.0, nan]\n", "avs.backoff_s", "not a finite number"),
    (b"[avs]\nping_idle_s = inf\n", "avs.ping_idle_s", "not a finite number"),
    (b"[avs]\nconnect_timeout_s = nan\n", "avs.connect_timeout_s", "not a finite number"),
    (b"[avs]\nevent_timeout_s = -5.0\n", "avs.event_timeout_s", "below the minimum"),
    (b"[dialog.timeouts]\nlistening_s = 0.0\n", "dialog.timeouts.listening_s", "greater than 0.0"),
    (b"[dialog.timeouts]\noffline_recheck_s = -1\n", "dialog.timeouts.offline_recheck_s", "greater than 0.0"),
    (b"[alerts]\nmax_ring_s = -inf\n", "alerts.max_ring_s", "not a finite number"),
    (b"[capabilities]\nretry_initial_s = 0.0\n", "capabilities.retry_initial_s", "greater than 0.0"),
    (b"[attachments]\nmax_bytes = 0\n", "attachments.max_bytes", "greater than 0"),
    (b'[avs]\nca_file = "/nonexistent/ca.pem"\n', "avs.ca_file", "No such file"),
    (b'[avs]\nca_file = "/etc/hostname"\n', "avs.ca_file", "cannot load a CA certificate"),
]


@pytest.mark.parametrize(("raw", "key", "words"), BAD_CONFIGS)
@pytest.mark.parametrize("argv", [["config", "--check"], ["run", "--config"], ["demo", "--config"]])
def test_bad_config_exits_78_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: bytes, key: str, words: str, argv: list[str]
) -> None:
    path = tmp_path / "avsd.toml"
    path.write_bytes(raw)
    assert main([*argv, str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err[:2000]
    assert lines[0].startswith(f"avsd: {key}" if key else "avsd: "), lines[0]
    assert words in lines[0] and len(lines[0]) < 400, lines[0]


@pytest.mark.parametrize("command", ["status", "login"])
def test_other_subcommands_reading_config_exit_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = tmp_path / "avsd.toml"
    path.write_bytes(b"[avs]\nbackoff_s = []\n")
    assert main([command, "--config", str(path)]) == EXIT_CONFIG
    assert capsys.readouterr().err.startswith("avsd: avs.backoff_s:")


def test_doctor_reports_a_bad_config_and_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "avsd.toml"
    path.write_bytes(b"[avs]\nping_timeout_s = nan\n")
    assert main(["doctor", "--config", str(path)]) == EXIT_CONFIG
    assert "avs.ping_timeout_s: nan is not a finite number" in capsys.readouterr().out


def test_readme_example_runs_as_written(tmp_path: Path) -> None:
    """The exit-78 example in the README, run by bash with `avsd` being this checkout."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("printf '[avs]", 1)[1].split("```", 1)[0]
    command = "printf '[avs]" + block.splitlines()[0]
    expected = [line.removeprefix("# ") for line in block.splitlines()[1:] if line.startswith("# ")]
    shim = tmp_path / "bin" / "avsd"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m avsd "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    script = "{ " + command + "; } 2>&1"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.stdout.splitlines() == expected


BAD_CREDENTIALS: list[tuple[bytes, str]] = [
    (b'{"client_id": "\xff", "refresh_token": "x"}', "not valid UTF-8"),
    # Python 3.13's json parses 5,000 levels; 100,000 is too deep for every version.
    (b"[" * DEEP_JSON + b"]" * DEEP_JSON, "nested too deeply"),
    (b'{"a": ' * DEEP_JSON + b"1" + b"}" * DEEP_JSON, "nested too deeply"),
    (b"\x00\x01 not json", "not valid JSON"),
]


@pytest.mark.parametrize(("raw", "words"), BAD_CREDENTIALS)
def test_bad_credentials_exit_78_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: bytes, words: str
) -> None:
    config = tmp_path / "avsd.toml"
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n')
    credentials = tmp_path / "credentials.json"
    credentials.write_bytes(raw)
    credentials.chmod(0o600)
    with pytest.raises(CredentialsError, match=words):
        load_credentials(credentials)
    assert main(["run", "--config", str(config)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and words in err


def test_good_values_still_pass(tmp_path: Path) -> None:
    path = tmp_path / "avsd.toml"
    path.write_text("[avs]\nbackoff_s = [0.5, 2]\nping_idle_s = 1e3\n[dialog.timeouts]\nlistening_s = 0.5\n")
    config = load_config(path)
    assert config.avs.backoff_s == (0.5, 2.0) and config.avs.ping_idle_s == 1000.0
    assert config.dialog.timeouts.listening_s == 0.5


def test_every_float_field_refuses_nan_and_inf() -> None:
    """Not only the fields that declare bounds: finiteness is the rule for every number in the file."""
    import dataclasses
    import typing

    from avsd.config import Config

    checked = 0
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        for f in dataclasses.fields(cls):
            hint = typing.get_type_hints(cls)[f.name]
            if hint is not float:
                continue
            for bad in (math.nan, math.inf, -math.inf):
                with pytest.raises(ConfigError, match=f"^{section.name}.{f.name}: .*finite"):
                    parse_config({section.name: {f.name: bad}})
            checked += 1
    assert checked > 20


def test_setting_declares_bounds_once() -> None:
    meta = setting(1.0, "a timeout", gt=0.0, max=10.0).metadata
    assert describe(meta) == "a timeout; > 0.0 and <= 10.0"
    check_bounds(10.0, meta)
    for bad in (0.0, -1.0, 10.5, math.nan):
        with pytest.raises(BoundError):
            check_bounds(bad, meta)
    listed = setting((1.0,), "a table", min=0.0, min_items=1).metadata
    assert describe(listed) == "a table; >= 0.0; at least 1 item(s)"
    with pytest.raises(BoundError, match="at least 1"):
        check_bounds((), listed)
    with pytest.raises(TypeError):
        setting([1.0], "a mutable default")


@pytest.mark.parametrize("table", [[], [-1.0], [math.nan], [1.0, math.inf]])
def test_backoff_refuses_a_table_that_would_spin_or_hang(table: list[float]) -> None:
    with pytest.raises(ValueError):
        Backoff(table)
