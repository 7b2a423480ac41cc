"""sd_notify over a real AF_UNIX datagram socket, the audio watchdog, journald, and the unit file."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from avsd.errors import ConfigError
from avsd.systemd import (
    AudioHeartbeat,
    SystemdNotifier,
    audio_alive,
    handle_reload,
    journal_handler,
    run_watchdog,
)
from tests.virtual_time import VirtualTime

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "avsd.service"


class NotifySocket:
    """What systemd listens on: a datagram socket; ``address`` is the NOTIFY_SOCKET value."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(2.0)

    def recv(self) -> str:
        return self.sock.recv(4096).decode()

    def drain(self) -> list[str]:
        self.sock.setblocking(False)
        out = []
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(2.0)
        return out


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    # A short directory: AF_UNIX paths are limited to 108 bytes and pytest's tmp_path can be longer.
    directory = tempfile.mkdtemp(prefix="avsd-nfy-")
    ns = NotifySocket(os.path.join(directory, "notify"))
    yield ns
    ns.sock.close()
    shutil.rmtree(directory)


@pytest.fixture
def abstract_socket() -> Iterator[NotifySocket]:
    ns = NotifySocket(f"@avsd-test-{os.getpid()}-{time.monotonic_ns()}")
    yield ns
    ns.sock.close()


def test_messages_reach_the_socket(notify_socket: NotifySocket) -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": notify_socket.address})
    assert n.enabled
    n.ready()
    n.status("online, idle")
    n.watchdog()
    n.stopping()
    assert [notify_socket.recv() for _ in range(4)] == [
        "READY=1",
        "STATUS=online, idle",
        "WATCHDOG=1",
        "STOPPING=1",
    ]


def test_reloading_carries_a_monotonic_timestamp(notify_socket: NotifySocket) -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": notify_socket.address})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    n.ready()
    reloading, ready = notify_socket.recv(), notify_socket.recv()
    match = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", reloading)
    assert match is not None
    assert before <= int(match.group(1)) <= before + 5_000_000
    assert ready == "READY=1"


def test_abstract_socket(abstract_socket: NotifySocket) -> None:
    SystemdNotifier({"NOTIFY_SOCKET": abstract_socket.address}).ready()
    assert abstract_socket.recv() == "READY=1"


def test_status_is_one_line(notify_socket: NotifySocket) -> None:
    SystemdNotifier({"NOTIFY_SOCKET": notify_socket.address}).status("offline:\nreconnecting in 5 s\n")
    assert notify_socket.recv() == "STATUS=offline: reconnecting in 5 s"


def test_through_libsystemd(notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("systemd.daemon", reason="systemd-python (the 'systemd' extra) is not installed")
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    SystemdNotifier().ready()  # env=None: the process environment, sent by libsystemd's sd_notify
    assert notify_socket.recv() == "READY=1"


def test_no_op_outside_systemd() -> None:
    n = SystemdNotifier({})
    assert not n.enabled
    n.ready()
    n.status("x")
    n.watchdog()
    n.stopping()
    n.reloading()
    assert n.watchdog_interval_s is None


def test_a_vanished_socket_is_not_fatal_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": "/nonexistent/avsd/notify"})
    with caplog.at_level(logging.WARNING, logger="avsd.systemd"):
        n.ready()
        n.watchdog()
    assert len([r for r in caplog.records if "sd_notify" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}, 15.0),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # not for us
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"}, None),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "0"}, None),
        ({"NOTIFY_SOCKET": "/run/x"}, None),
        ({"WATCHDOG_USEC": "30000000"}, None),  # no socket to pet
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert SystemdNotifier(env).watchdog_interval_s == expected


@pytest.mark.parametrize(
    ("now", "last", "max_age", "alive"),
    [(10.0, 9.5, 1.0, True), (10.0, 9.0, 1.0, True), (10.0, 8.9, 1.0, False), (10.0, None, 1.0, False)],
)
def test_audio_alive(now: float, last: float | None, max_age: float, alive: bool) -> None:
    assert audio_alive(now, last, max_age) is alive


def test_heartbeat_grace_suspend_resume() -> None:
    hb = AudioHeartbeat(max_age_s=2.0, now=100.0)
    assert hb.alive(101.0)  # start-up grace
    assert not hb.alive(103.0)
    hb.suspend()  # privacy mute: the microphone is closed on purpose
    assert hb.alive(500.0)
    hb.resume(now=500.0)
    assert hb.alive(501.0)
    assert not hb.alive(503.0)
    hb.beat(503.0)
    assert hb.alive(504.0) and hb.last_frame_time == 503.0


async def test_watchdog_stops_when_capture_hangs_and_resumes(
    notify_socket: NotifySocket, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On virtual loop time: the capture's heartbeat, the watchdog's period and the hang are all exact."""
    clock = VirtualTime(monkeypatch)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "100000"})
    interval = notifier.watchdog_interval_s
    assert interval == 0.05
    heartbeat = AudioHeartbeat(max_age_s=0.15, now=clock())
    task = asyncio.create_task(run_watchdog(notifier, lambda: heartbeat.alive(clock()), interval))

    async def capture_for(seconds: float) -> None:  # frames every 10 ms
        for _ in range(round(seconds / 0.01)):
            heartbeat.beat(clock())
            await clock.advance(0.01)

    try:
        with caplog.at_level(logging.INFO, logger="avsd.systemd"):
            await capture_for(0.4)
            petted = notify_socket.drain()
            assert set(petted) == {"WATCHDOG=1"} and 8 <= len(petted) <= 9  # every 50 ms

            await clock.run_for(0.2)  # the capture hangs: after max_age (0.15 s) the petting stops
            notify_socket.drain()
            await clock.run_for(5.0)
            assert notify_socket.drain() == []  # 5 s without a pet: systemd would restart us
            stalled = [r for r in caplog.records if "stalled" in r.getMessage()]
            assert len(stalled) == 1 and stalled[0].levelno == logging.ERROR  # logged once

            await capture_for(0.06)  # it recovers before WatchdogSec
            assert "WATCHDOG=1" in notify_socket.drain()
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_watchdog_treats_a_failing_probe_as_dead(
    notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": notify_socket.address})

    def probe() -> bool:
        raise RuntimeError("capture object gone")

    clock = VirtualTime(monkeypatch)
    task = asyncio.create_task(run_watchdog(notifier, probe, 0.02))
    await clock.run_for(1.0)  # 50 periods
    task.cancel()
    assert notify_socket.drain() == []


async def test_watchdog_returns_at_once_outside_systemd() -> None:
    async with asyncio.timeout(1):
        await run_watchdog(SystemdNotifier({}), lambda: True, 0.01)


def test_journal_handler() -> None:
    assert journal_handler({}) is None
    pytest.importorskip("systemd.journal", reason="systemd-python (the 'systemd' extra) is not installed")
    handler = journal_handler({"JOURNAL_STREAM": "8:12345"})
    assert handler is not None
    assert type(handler).__name__ == "JournalHandler"
    assert handler.formatter is not None and "asctime" not in (handler.formatter._fmt or "")


# --- the unit file ---
def _directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("WatchdogSec", "30"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "78"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("StandardInput", "null"),
        ("TimeoutStopSec", "10"),
        ("User", "avsd"),
        ("SupplementaryGroups", "audio gpio spi"),
        ("StateDirectory", "avsd"),
        ("ConfigurationDirectory", "avsd"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("DevicePolicy", "closed"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("After", "network-online.target sound.target"),
        ("Wants", "network-online.target"),
        ("ExecStart", "/opt/avsd/venv/bin/avsd run --config /etc/avsd/avsd.toml"),
    ],
)
def test_unit_directive(key: str, value: str) -> None:
    assert value in _directives()[key]


def test_unit_device_access_is_sound_gpio_spi_only() -> None:
    assert sorted(_directives()["DeviceAllow"]) == ["char-alsa rw", "char-gpiochip rw", "char-spi rw"]


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package 'systemd')")
    return tool


def test_unit_verifies(tmp_path: Path) -> None:
    tool = _analyze()
    # verify checks that ExecStart exists; point it at a real executable (install.sh does the same rewrite).
    unit = tmp_path / "avsd.service"
    unit.write_text(UNIT.read_text().replace("/opt/avsd/venv/bin/avsd", sys.executable))
    result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "avsd.service" not in result.stderr  # no warnings about our unit


def test_unit_security_exposure(tmp_path: Path) -> None:
    tool = _analyze()
    result = subprocess.run(
        [tool, "security", "--offline=true", str(UNIT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    match = re.search(r"Overall exposure level for avsd\.service: ([\d.]+)", result.stdout)
    if match is None:
        pytest.skip(f"this systemd-analyze has no offline security mode: {result.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 2.5


async def test_sighup_reloads_between_reloading_and_ready(notify_socket: NotifySocket) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": notify_socket.address})
    reloads: list[int] = []
    gate = asyncio.Event()

    async def reload() -> None:
        reloads.append(len(reloads))
        if len(reloads) == 2:
            raise ConfigError("leds.kind", "must be one of none, single")
        await gate.wait()

    remove = handle_reload(asyncio.get_running_loop(), notifier, reload)
    try:
        async with asyncio.timeout(5):
            os.kill(os.getpid(), signal.SIGHUP)
            while not reloads:
                await asyncio.sleep(0.01)
            os.kill(os.getpid(), signal.SIGHUP)  # during the reload: coalesced into one more
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.sleep(0.05)
            gate.set()
            while len(reloads) < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            messages = notify_socket.drain()
    finally:
        remove()
    assert reloads == [0, 1]
    assert [m.split("\n")[0] for m in messages] == [
        "RELOADING=1",
        "READY=1",
        "RELOADING=1",
        "STATUS=reload failed: leds.kind: must be one of none, single",
        "READY=1",  # a bad edit keeps the daemon running on its old config
    ]
