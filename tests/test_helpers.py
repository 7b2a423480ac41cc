"""The one-of-each helpers: Backoff (every retry loop), atomic_write (every state file), StateFileWriter (the fsync
off the event loop), TaskSet (every component's background tasks)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import stat
import threading
from pathlib import Path

import pytest

from avsd.agents.speaker import SpeakerAgent
from avsd.avs.backoff import Backoff
from avsd.avs.messages import Event
from avsd.fileio import StateFileWriter, atomic_write
from avsd.tasks import TaskSet


def test_exponential_backoff_doubles_to_the_cap_and_resets() -> None:
    backoff = Backoff.exponential(1.0, 10.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_exponential_backoff_jitter_stays_in_range() -> None:
    backoff = Backoff.exponential(2.0, 300.0, jitter=(0.5, 1.0), rng=random.Random(1))
    for expected in (2.0, 4.0, 8.0, 16.0):
        assert expected * 0.5 <= backoff.next_delay() <= expected


def test_exponential_backoff_from_zero_reaches_the_cap() -> None:
    backoff = Backoff.exponential(0.0, 5.0)
    assert [backoff.next_delay() for _ in range(3)] == [0.0, 5.0, 5.0]


@pytest.mark.parametrize(("initial", "maximum"), [(-1.0, 5.0), (1.0, float("inf")), (float("nan"), 1.0)])
def test_exponential_backoff_refuses_bad_bounds(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError):
        Backoff.exponential(initial, maximum)


def test_atomic_write_replaces_with_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "secret.json"
    atomic_write(path, b"one", mode=0o600)
    atomic_write(path, b"two", mode=0o600)
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret.json"]


async def test_state_file_writer_fsyncs_off_the_loop_and_latest_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        threads.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr("avsd.fileio.os.fsync", recording_fsync)
    writer = StateFileWriter(tmp_path / "volume.json", "volume")
    for volume in range(5):
        writer.save({"volume": volume})
    async with asyncio.timeout(5):
        await writer.flush()
    assert json.loads((tmp_path / "volume.json").read_text()) == {"volume": 4}
    assert threads and threading.main_thread().name not in threads


class _Events:
    def send(self, event: Event) -> None:
        pass


async def test_speaker_volume_is_saved_off_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        "avsd.fileio.os.fsync", lambda fd: (threads.append(threading.current_thread().name), real_fsync(fd))[1]
    )
    agent = SpeakerAgent(events=_Events(), state_dir=tmp_path)
    agent.set_volume(33)
    async with asyncio.timeout(5):
        await agent.close()  # flushes the pending save
    assert json.loads((tmp_path / "speaker.json").read_text())["volume"] == 33
    assert threads and threading.main_thread().name not in threads


async def test_task_set_logs_a_failure_and_cancels_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskSet(logging.getLogger("test.taskset"), "t-")

    async def fail() -> None:
        raise RuntimeError("boom")

    sleeper = tasks.spawn(asyncio.sleep(60), "sleeper")
    failing = tasks.spawn(fail(), "fail")
    async with asyncio.timeout(5):
        await asyncio.wait({failing})
        await asyncio.sleep(0)  # the done callback runs
        assert [t.get_name() for t in tasks] == ["t-sleeper"] and len(tasks) == 1
        await tasks.cancel_all()
    assert sleeper.cancelled() and len(tasks) == 0
    assert "task t-fail failed" in caplog.text
