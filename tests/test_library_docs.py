"""Every example in docs/library.md, run as written against the local AVS server the doc tells you to start.

The ``avsd emulator`` command of the doc is started as written (``avsd`` = this interpreter's ``-m avsd``) and
restarted for each Python example, so each one meets the scripted multi-turn server from its first question.
The microphone example records through real PortAudio + ALSA, whose default capture device is ALSA's ``file``
plugin reading speech then silence (an ``.asoundrc`` in a temporary HOME), so the server's own endpointing ends it.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import fixture_pcm

REPO = Path(__file__).parent.parent
DOC = (REPO / "docs" / "library.md").read_text()
BLOCKS = re.findall(r"```(sh|python)\n(.*?)```", DOC, flags=re.S)
SHELL = [line for kind, text in BLOCKS if kind == "sh" for line in text.splitlines() if line.strip()]
PYTHON = [text for kind, text in BLOCKS if kind == "python"]
EMULATOR = next(line for line in SHELL if line.startswith("avsd emulator"))
PORT = int(re.search(r"--port (\d+)", EMULATOR).group(1))  # type: ignore[union-attr]
# What each example must print (or leave behind), in the doc's order.
EXPECT = [
    "SpeechSynthesizer.Speak, SpeechRecognizer.ExpectSpeech (expects speech)",  # quick start
    "",  # alexa_client style: checked by its output file
    "SpeechSynthesizer.Speak",  # microphone
    "Alexa: SpeechSynthesizer.Speak, Alerts.SetAlert",  # multi-step
    "tell me a joke -> SpeechSynthesizer.Speak",  # asyncio
]


def as_argv(line: str) -> list[str]:
    argv = shlex.split(line)
    return [sys.executable, "-m", "avsd", *argv[1:]] if argv[0] == "avsd" else argv


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "config").symlink_to(REPO / "config")  # the doc's relative scenario paths
    home = tmp_path / "home"
    home.mkdir()
    mic = tmp_path / "mic.raw"
    mic.write_bytes(bytes(16000) + fixture_pcm("alexa-what-time-is-it") + bytes(32000 * 6))
    (home / ".asoundrc").write_text(textwrap.dedent(f"""
        pcm.!default {{
            type file
            slave.pcm "null"
            file "/dev/null"
            infile "{mic}"
            format "raw"
        }}
        """))
    yield tmp_path


def run_env(workdir: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(workdir / "home"), "PYTHONPATH": str(REPO)}


class DocServer:
    def __init__(self, workdir: Path) -> None:
        self.proc = subprocess.Popen(as_argv(EMULATOR), cwd=workdir, env=run_env(workdir),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.proc.stderr.read().decode() if self.proc.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=0.5).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "the documented emulator did not start"
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_the_doc_has_the_examples_this_test_expects() -> None:
    assert len(PYTHON) == len(EXPECT)
    assert sum(line.startswith("avsd ask") for line in SHELL) == 2


def test_every_example_runs_as_written(workdir: Path) -> None:
    env = run_env(workdir)
    for line in SHELL:
        if not line.startswith("avsd"):  # making the question: espeak-ng | sox
            subprocess.run(line, shell=True, cwd=workdir, env=env, check=True, timeout=60)
    for index, (code, expected) in enumerate(zip(PYTHON, EXPECT, strict=True)):
        server = DocServer(workdir)
        try:
            proc = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True,
                                  text=True, timeout=90, check=False)
        finally:
            server.stop()
        assert proc.returncode == 0, f"example {index}:\n{code}\n{proc.stderr[-3000:]}"
        assert expected in proc.stdout, f"example {index} printed:\n{proc.stdout}"
    assert (workdir / "reply.mp3").stat().st_size > 1000
    assert (workdir / "output_0.mp3").stat().st_size > 1000
    for line in (line for line in SHELL if line.startswith("avsd ask")):
        proc = subprocess.run(as_argv(line), cwd=workdir, env=env, capture_output=True, text=True, timeout=90,
                              check=False)
        assert proc.returncode == 0, f"{line}\n{proc.stderr}"
        assert "SpeechSynthesizer.Speak" in proc.stdout
    assert sorted(p.name for p in (workdir / "replies").glob("*.wav")) == [
        "01-question.wav", "01-set-a-timer.wav", "02-what-time-is-it.wav"
    ]


def test_the_readme_avsd_ask_command_runs_as_written() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## avsd as a Python library", 1)[1].split("\n## ", 1)[0]
    (line,) = [ln for ln in section.splitlines() if ln.startswith("avsd ask ")]
    proc = subprocess.run(as_argv(line), cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = Path(shlex.split(line)[shlex.split(line).index("--out") + 1])
    assert proc.stdout.count("SpeechSynthesizer.Speak ->") == 2
    assert (out / "02-what-time-is-it.wav").stat().st_size > 10000
