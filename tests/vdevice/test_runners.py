"""Bespoken YAML suites: run by Bespoken's own ``bst test`` (bespoken-tools 2.6.7, unchanged) against
``avsd vdevice``, and natively by ``avsd test``; a passing and a failing suite each."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vdevice.conftest import NODE_DIR, REPLY, RunningDevice, needs_node

pytestmark = pytest.mark.timeout(180)

PASSING = """---
configuration:
  locale: en-US
  voiceId: Joey
---
- test: the emulator answers
- tags: smoke
- what time is it: how many players
- hello there:
  - prompt:
    - nothing like this
    - "welcome to the quiz*players"
  - streamURL: undefined
  - cardTitle == undefined
  - "raw.messageBody.directives[0].header.namespace": SpeechSynthesizer
"""

FAILING = """---
- test: expects the wrong words
- what time is it: the weather in paris
"""


def write_project(folder: Path, base_url: str, token: str, suites: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    testing = {"type": "e2e", "virtualDeviceToken": token, "virtualDeviceBaseURL": base_url,
               "asyncE2EWaitInterval": 300, "homophones": {"quiz": ["kiwis", "squeeze"]}}
    (folder / "testing.json").write_text(json.dumps(testing))
    for name, text in suites.items():
        (folder / name).write_text(text)


async def bst(folder: Path, base_url: str, *args: str) -> tuple[int, str]:
    # bst writes ~/.bst/config; it reports results to Bespoken's dashboard and exits 1 when it cannot: offline,
    # avsd vdevice is that endpoint too (README).
    (folder / "home").mkdir(exist_ok=True)  # bst creates ~/.bst but not ~ itself
    env = {**os.environ, "HOME": str(folder / "home"), "BESPOKEN_API_BASE_URL": base_url}
    proc = await asyncio.create_subprocess_exec(
        str(NODE_DIR / "node_modules" / ".bin" / "bst"), "test", *args, cwd=folder, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 150)
    return proc.returncode or 0, out.decode()


@needs_node
async def test_bst_test_passes_and_fails_against_avsd(vdevice: RunningDevice, tmp_path: Path) -> None:
    project = tmp_path / "skill"
    write_project(project, vdevice.url, vdevice.token, {"pass.e2e.yml": PASSING, "fail.e2e.yml": FAILING})
    code, out = await bst(project, vdevice.url, "pass.e2e.yml")
    assert code == 0, out
    assert "1 passed" in out, out
    code, out = await bst(project, vdevice.url, "fail.e2e.yml")
    assert code != 0, out
    assert "1 failed" in out, out


async def avsd_test(*args: str, cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsd", "test", *args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 150)
    return proc.returncode or 0, out.decode()


async def test_avsd_test_native_against_a_running_vdevice(vdevice: RunningDevice, tmp_path: Path) -> None:
    project = tmp_path / "skill"
    write_project(project, vdevice.url, vdevice.token, {"pass.e2e.yml": PASSING, "fail.e2e.yml": FAILING})
    code, out = await avsd_test("pass.e2e.yml", "--base-url", vdevice.url, "--junit", "out.xml", cwd=project)
    assert code == 0, out
    assert "1 passed, 0 failed" in out
    assert 'failures="0"' in (project / "out.xml").read_text()
    code, out = await avsd_test("fail.e2e.yml", "--base-url", vdevice.url, cwd=project)
    assert code == 1, out
    assert "Expected value at [prompt]" in out and "0 passed, 1 failed" in out


async def test_avsd_test_in_process_backend(tmp_path: Path) -> None:
    project = tmp_path / "skill"
    write_project(project, "http://unused", "unused-token-000000", {"pass.e2e.yml": PASSING})
    (project / "quiz.toml").write_text(f'reply_text = "{REPLY}"\n')
    code, out = await avsd_test("pass.e2e.yml", "--backend", "emulator", "--scenario", "quiz.toml",
                                "--junit", "j.xml", cwd=project)
    assert code == 0, out
    assert "PASS  the emulator answers" in out
    assert 'tests="1"' in (project / "j.xml").read_text()


REPO = Path(__file__).resolve().parents[2]


async def test_readme_example_suite_against_the_offline_assistant(tmp_path: Path) -> None:
    """README: ``avsd test config/vdevice/assistant.e2e.yml --backend assistant``, exactly."""
    code, out = await avsd_test("config/vdevice/assistant.e2e.yml", "--backend", "assistant", cwd=REPO)
    assert code == 0, out
    assert "3 passed, 0 failed" in out


@needs_node
async def test_bst_against_avsd_vdevice_process(tmp_path: Path) -> None:
    """The documented flow: ``avsd vdevice --backend assistant`` in its own process, Bespoken's bst against it."""
    state = tmp_path / "state"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsd", "vdevice", "--backend", "assistant", "--port", "0", "--state-dir", str(state),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert first.startswith("avsd vdevice: http://127.0.0.1:"), first
        url = first.split()[2]
        token = next(line for line in (state / "vdevice-tokens").read_text().splitlines() if not line.startswith("#"))
        project = tmp_path / "skill"
        suite = (REPO / "config" / "vdevice" / "assistant.e2e.yml").read_text()
        write_project(project, url, token.strip(), {"assistant.e2e.yml": suite})
        code, out = await bst(project, url, "assistant.e2e.yml")
        assert code == 0, out
        assert "3 passed" in out, out
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
