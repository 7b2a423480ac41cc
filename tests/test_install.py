"""scripts/install.sh into a temporary prefix: twice (idempotent), user config kept, --dry-run inert."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "install.sh"
# --no-deps: the test checks the install mechanics, not that PyPI still serves avsd's dependencies.
FAST = ["--no-systemd", "--no-apt", "--pip-args", "--no-deps", "--python", sys.executable]
USER_CONFIG = "# edited by the user\n[button]\npin = 27\n"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="install.sh needs bash")


def _run(*args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AVSD_PIP_ARGS"}
    return subprocess.run(
        ["bash", str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd="/",
    )


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        target = os.readlink(path) if path.is_symlink() else ""
        out[str(path.relative_to(root))] = (st.st_mtime_ns, st.st_size, target)
    return out


@dataclass
class Installed:
    root: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("prefix")
    first = _run("--prefix", root, *FAST)
    assert first.returncode == 0, first.stdout + first.stderr
    (root / "etc/avsd/avsd.toml").write_text(USER_CONFIG)  # the user edits the config between runs
    second = _run("--prefix", root, *FAST)
    assert second.returncode == 0, second.stdout + second.stderr
    return Installed(root, first, second)


def test_tree(installed: Installed) -> None:
    root = installed.root
    venv = root / "opt/avsd/venv"
    assert (venv / "bin/python").exists()
    assert os.access(venv / "bin/avsd", os.X_OK)
    link = root / "usr/local/bin/avsd"
    assert link.is_symlink() and Path(os.readlink(link)) == venv / "bin/avsd"
    assert (root / "etc/avsd/avsd.toml").is_file()
    assert (root / "etc/udev/rules.d/60-avsd-gpio.rules").read_text() == (
        REPO / "systemd/60-avsd-gpio.rules"
    ).read_text()
    unit = (root / "etc/systemd/system/avsd.service").read_text()
    assert f"ExecStart={venv}/bin/avsd run --config {root}/etc/avsd/avsd.toml" in unit
    assert unit.count("/opt/avsd") == unit.count(f"{root}/opt/avsd")  # every path points into the prefix
    assert "Type=notify" in unit


def test_avsd_is_importable_from_the_venv(installed: Installed) -> None:
    python = installed.root / "opt/avsd/venv/bin/python"
    code = "import avsd, avsd.hw.patterns, avsd.systemd; print(avsd.__version__, avsd.__file__)"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert out.returncode == 0, out.stderr
    version, path = out.stdout.split()
    assert version == __import__("avsd").__version__
    assert path.startswith(str(installed.root))  # a real copy, not the checkout


def test_first_run_creates_second_run_upgrades(installed: Installed) -> None:
    assert "avsd installed under" in installed.first.stdout
    assert "config: created" in installed.first.stdout
    assert "avsd upgraded under" in installed.second.stdout
    assert "Next step" in installed.second.stdout and "login" in installed.second.stdout


def test_user_config_survives_an_upgrade(installed: Installed) -> None:
    assert (installed.root / "etc/avsd/avsd.toml").read_text() == USER_CONFIG
    assert "config: kept your" in installed.second.stdout


def test_fresh_config_comes_from_the_repo_or_a_placeholder(installed: Installed, tmp_path: Path) -> None:
    # Only the mechanics of the first run matter here; re-use its output.
    repo_config = REPO / "config/avsd.toml"
    assert "config: created" in installed.first.stdout
    if repo_config.exists():
        assert f"install -m 0644 {repo_config}" in installed.first.stdout
    else:
        assert "commented placeholder" in installed.first.stdout


def test_installed_unit_verifies(installed: Installed) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package 'systemd')")
    unit = installed.root / "etc/systemd/system/avsd.service"
    result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=30, cwd="/")
    assert result.returncode == 0, result.stderr


def test_dry_run_changes_nothing_in_an_installed_tree(installed: Installed) -> None:
    before = _snapshot(installed.root)
    result = _run("--dry-run", "--prefix", installed.root, *FAST)
    assert result.returncode == 0, result.stderr
    assert _snapshot(installed.root) == before
    assert "+ " in result.stdout and "pip install" in result.stdout  # every action is printed
    assert "dry run: nothing changed" in result.stdout


def test_dry_run_into_an_empty_prefix_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "never"
    result = _run("--dry-run", "--prefix", root, *FAST)
    assert result.returncode == 0, result.stderr
    assert not root.exists()
    assert f"venv {root}/opt/avsd/venv" in result.stdout


def test_system_dry_run_plans_user_groups_and_apt(tmp_path: Path) -> None:
    result = _run("--dry-run", "--python", sys.executable)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "apt-get install" in out and "portaudio19-dev" in out
    assert "useradd" in out or "usermod" in out
    assert "audio\\,gpio\\,spi" in out
    assert "/etc/systemd/system/avsd.service" in out


def test_unknown_option_is_a_usage_error() -> None:
    result = _run("--frobnicate")
    assert result.returncode == 2
    assert "unknown option" in result.stderr


def test_no_amazon_credentials_selects_the_offline_assistant(installed: Installed, tmp_path: Path) -> None:
    """A new config without --client-id runs the offline assistant; with it, Amazon (after `avsd login`)."""
    assert "config: avs.backend = assistant" in installed.first.stdout
    assert "The offline assistant answers" in installed.first.stdout
    amazon = _run("--dry-run", "--prefix", tmp_path / "amazon", "--client-id", "amzn1.application-oa2-client.x", *FAST)
    assert amazon.returncode == 0, amazon.stderr
    assert "config: auth.client_id = amzn1.application-oa2-client.x, avs.backend = avs" in amazon.stdout
    assert "avs.backend = assistant" not in amazon.stdout
    assert "link the device to your Amazon account" in amazon.stdout
