"""`avsd run` as a process, the way systemd runs it: an emulator in the test process, a credentials file, a WAV as
the microphone, and a unix datagram socket as NOTIFY_SOCKET (with WATCHDOG_USEC).

Covered: READY=1, STATUS= with the state and connection, periodic WATCHDOG=1 that stops when the capture path
hangs (test hook AVSD_TEST_HANG_AUDIO_AFTER_S; the heartbeat/watchdog path measured is the production one),
STOPPING=1 and exit 0 on SIGTERM, SIGHUP reload (RELOADING=1, READY=1, the log line), the control socket
(`avsd stop`, `avsd status`), and a bad config / missing credentials giving exit 78.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import shutil
import signal
import socket
import sys
import tempfile
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from avsd.avs.credentials import Credentials, save_credentials
from avsd.emulator.server import Emulator

FIXTURES = Path(__file__).parent / "fixtures"


class NotifySocket:
    """What systemd listens on; received datagrams are collected by :meth:`pump` on the loop."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []

    def pump(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                data = self.sock.recv(4096).decode()
                self.messages.append((asyncio.get_running_loop().time(), data))

    async def wait_for(self, prefix: str, timeout: float = 15.0, *, after: float = 0.0) -> float:
        async with asyncio.timeout(timeout):
            while True:
                self.pump()
                for t, message in self.messages:
                    if t >= after and any(line.startswith(prefix) for line in message.split("\n")):
                        return t
                await asyncio.sleep(0.02)

    def times(self, message: str) -> list[float]:
        self.pump()
        return [t for t, m in self.messages if m == message]


@pytest.fixture
async def notify() -> AsyncIterator[NotifySocket]:
    directory = tempfile.mkdtemp(prefix="avsd-run-")  # AF_UNIX paths are short; tmp_path may be too long
    ns = NotifySocket(os.path.join(directory, "notify"))
    # Read continuously, as systemd does: a full datagram queue would block the daemon's sd_notify().
    loop = asyncio.get_running_loop()
    loop.add_reader(ns.sock.fileno(), ns.pump)
    yield ns
    loop.remove_reader(ns.sock.fileno())
    ns.sock.close()
    shutil.rmtree(directory)


def silence_wav(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(int(seconds * 16000) * 2))
    return path


def write_config(path: Path, emulator: Emulator, state_dir: Path, extra: str = "") -> Path:
    path.write_text(
        f'[daemon]\nstate_dir = "{state_dir}"\n'
        f'[avs]\nendpoint = "{emulator.base_url}"\nca_file = "{emulator.ca_file}"\nbackoff_s = [0.05, 0.1]\n'
        f'[playback]\nbackend = "wav"\nwav_dir = "{state_dir.parent / "played"}"\n'
        f'[audio]\nstall_timeout_s = 1.0\n'
        f'[button]\npin = -1\n' + extra
    )
    return path


@dataclass
class Daemon:
    proc: asyncio.subprocess.Process
    config: Path
    state_dir: Path
    stderr: list[str] = field(default_factory=list)

    async def read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace"))

    async def wait_log(self, text: str, timeout: float = 10.0) -> str:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for line in self.stderr:
                        if text in line:
                            return line
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"no {text!r} in the log:\n" + "".join(self.stderr[-20:])) from None


@contextlib.asynccontextmanager
async def avsd_run(
    tmp_path: Path,
    emulator: Emulator,
    notify: NotifySocket,
    *,
    seconds: float = 30.0,
    env: dict[str, str] | None = None,
    hardware: str = "none",
) -> AsyncIterator[Daemon]:
    state_dir = tmp_path / "state"
    save_credentials(state_dir / "credentials.json", Credentials("avsd-test", emulator.refresh_token))
    config = write_config(tmp_path / "avsd.toml", emulator, state_dir)
    wav = silence_wav(tmp_path / "input.wav", seconds)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsd", "run", "--config", str(config), "--input", str(wav), "--hardware", hardware,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000", **(env or {})},
    )
    daemon = Daemon(proc, config, state_dir)
    reader = asyncio.create_task(daemon.read_stderr())
    try:
        yield daemon
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await reader


async def control(daemon: Daemon, command: str) -> str:
    """One command on the control socket, from a thread (the client is blocking, as the CLI is)."""
    from avsd.control import send_command, socket_path

    return await asyncio.to_thread(send_command, socket_path(daemon.state_dir), command)


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(cert_dir=tmp_path / "certs") as emu:
        yield emu


async def test_ready_status_watchdog_and_stopping(tmp_path: Path, emulator: Emulator, notify: NotifySocket) -> None:
    async with asyncio.timeout(40), avsd_run(tmp_path, emulator, notify, hardware="mock") as daemon:
        ready = await notify.wait_for("READY=1")
        await notify.wait_for("STATUS=idle; AVS connected")
        await asyncio.sleep(1.0)
        pets = [t for t in notify.times("WATCHDOG=1") if t > ready]
        assert len(pets) >= 3  # every 0.1 s (half of WATCHDOG_USEC) while frames arrive

        # Privacy mute closes the microphone; the watchdog must not take that for a hang.
        assert await control(daemon, "mute") == "ok muted"
        await notify.wait_for("STATUS=muted")
        muted = asyncio.get_running_loop().time()
        await asyncio.sleep(1.6)  # longer than audio.stall_timeout_s
        assert [t for t in notify.times("WATCHDOG=1") if t > muted + 1.3]
        assert "audio pipeline stalled" not in "".join(daemon.stderr)
        assert await control(daemon, "mute") == "ok unmuted"
        await notify.wait_for("STATUS=idle", after=muted)
        daemon.proc.send_signal(signal.SIGTERM)
        assert await daemon.proc.wait() == 0
        await notify.wait_for("STOPPING=1")
    assert "[leds] idle" in "".join(daemon.stderr)  # --hardware mock drew the LEDs on the terminal
    assert "Traceback" not in "".join(daemon.stderr)


async def test_watchdog_stops_when_capture_hangs(tmp_path: Path, emulator: Emulator, notify: NotifySocket) -> None:
    env = {"AVSD_TEST_HANG_AUDIO_AFTER_S": "1.0"}
    async with asyncio.timeout(40), avsd_run(tmp_path, emulator, notify, env=env) as daemon:
        await notify.wait_for("READY=1")
        await daemon.wait_log("the audio source hangs now")
        hung = asyncio.get_running_loop().time()
        await daemon.wait_log("audio pipeline stalled", timeout=5)
        await asyncio.sleep(1.5)
        late = [t for t in notify.times("WATCHDOG=1") if t > hung + 1.3]  # stall_timeout_s 1.0 + 0.1 + slack
        assert late == []
        assert any(t < hung for t in notify.times("WATCHDOG=1"))
        assert daemon.proc.returncode is None  # still running: systemd is the one to kill it
        daemon.proc.send_signal(signal.SIGTERM)
        assert await daemon.proc.wait() == 0


async def test_reload_and_control_socket(tmp_path: Path, emulator: Emulator, notify: NotifySocket) -> None:
    async with asyncio.timeout(40), avsd_run(tmp_path, emulator, notify) as daemon:
        await notify.wait_for("STATUS=idle; AVS connected")
        write_config(
            daemon.config, emulator, daemon.state_dir,
            '[speaker]\nvolume_step = 25\n[endpointing]\ntrailing_silence_s = 0.5\n[alerts]\nvolume = 70\n',
        )
        sent = asyncio.get_running_loop().time()
        daemon.proc.send_signal(signal.SIGHUP)
        await notify.wait_for("RELOADING=1", after=sent)
        await notify.wait_for("READY=1", after=sent)
        line = await daemon.wait_log("reload: changed")
        assert "applied endpointing, speaker" in line and "needs a restart: alerts" in line
        connections = emulator.connection_count

        async def cli(*args: str) -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "avsd", *args, "--config", str(daemon.config),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            out, _ = await proc.communicate()
            assert proc.returncode is not None
            return proc.returncode, out.decode().strip()

        assert await cli("stop") == (0, "none")  # nothing rings, nobody speaks
        assert await cli("status") == (0, "ok idle connected")
        socket_mode = (daemon.state_dir / "control.sock").stat().st_mode & 0o777
        assert socket_mode == 0o600

        # A broken edit is refused; the daemon keeps running on the previous config.
        daemon.config.write_text(daemon.config.read_text() + "\n[speaker]\nvolume_step = 99\n")
        sent = asyncio.get_running_loop().time()
        daemon.proc.send_signal(signal.SIGHUP)
        await notify.wait_for("STATUS=reload failed", after=sent)
        assert daemon.proc.returncode is None
        assert emulator.connection_count == connections  # the reloads kept the AVS connection
        daemon.proc.send_signal(signal.SIGTERM)
        assert await daemon.proc.wait() == 0
    assert not (daemon.state_dir / "control.sock").exists()


async def test_missing_credentials_exit_78(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path / "avsd.toml", emulator, tmp_path / "state")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsd", "run", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        _, err = await proc.communicate()
    assert proc.returncode == 78
    assert "avsd login" in err.decode() and len(err.decode().strip().splitlines()) == 1


def with_button(config: Any, button: Any) -> Any:
    return dataclasses.replace(config, button=button)


# ----- --hardware mock in process: MockFactory presses the button of a real Daemon, the LEDs follow ---------------


async def test_button_drives_the_daemon_and_the_leds(tmp_path: Path) -> None:
    from avsd.hw.button import ButtonCommand, ButtonSettings
    from avsd.hw.leds import RecordingLed
    from avsd.hw.patterns import LedPattern
    from avsd.root import build_hardware
    from avsd.state import DialogState as S
    from tests.harness import running_device
    from tests.hw.test_button_to_leds import until

    fast = ButtonSettings(pin=17, bounce_s=0.01, hold_s=0.15, long_press_s=0.4)
    async with asyncio.timeout(30), running_device(tmp_path) as device:
        led = RecordingLed()
        hw = build_hardware(
            device.daemon, with_button(device.daemon.config, fast), "mock", asyncio.get_running_loop(), led=led
        )
        pin = hw.pin_factory.pin(17)  # type: ignore[attr-defined]

        async def press(seconds: float) -> None:
            pin.drive_low()
            await asyncio.sleep(seconds)
            pin.drive_high()
            await asyncio.sleep(0.05)

        try:
            await device.source.feed_silence(0.2)
            assert led.current is not None and led.current.name is LedPattern.IDLE

            await press(0.05)  # tap -> a TAP dialog
            assert hw.commands == [ButtonCommand.TALK]
            assert device.daemon.dialog.state is S.LISTENING
            assert led.current.name is LedPattern.LISTENING
            await press(0.5)  # long press -> the capture is abandoned and the microphone closed
            assert hw.commands[-2:] == [ButtonCommand.CANCEL_HOLD, ButtonCommand.PRIVACY_TOGGLE]
            assert device.daemon.dialog.state is S.MUTED
            assert led.current.name is LedPattern.MUTED
            await device.source.feed_silence(0.05)  # the next frame makes the audio loop let go of the source
            await until(lambda: device.source.closed >= 1)
            await press(0.05)  # a tap while muted does nothing
            assert device.daemon.dialog.state is S.MUTED
            await press(0.5)  # long press again: unmuted, the microphone reopens
            assert device.daemon.dialog.state is S.IDLE
            await until(lambda: device.source.opened >= 2)
            assert led.current.name is LedPattern.IDLE

            started = len(device.transitions)
            pin.drive_low()  # hold -> PRESS_AND_HOLD capture until the release
            await asyncio.sleep(0.25)
            assert device.daemon.dialog.state is S.LISTENING
            await device.source.feed_silence(0.1)
            pin.drive_high()
            await device.wait_state(S.THINKING, after=started)
            assert hw.commands[-2:] == [ButtonCommand.HOLD_TO_TALK, ButtonCommand.END_HOLD]
            assert LedPattern.THINKING in [p.name for p in led.shown]
            recognize = await device.emulator.wait_for_event("SpeechRecognizer.Recognize", count=2)
            assert recognize.event is not None
            assert recognize.event["event"]["payload"]["initiator"]["type"] == "PRESS_AND_HOLD"
        finally:
            hw.close()
        assert led.closed


async def test_missing_microphone_is_retried_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    from avsd.audio.source import AudioSource
    from avsd.errors import AudioDeviceError
    from avsd.main import MonitoredSource
    from avsd.systemd import AudioHeartbeat
    from tests.harness import FeedSource

    loop = asyncio.get_running_loop()
    feed = FeedSource()
    attempts: list[float] = []

    async def open_source() -> AudioSource:
        attempts.append(loop.time())
        if len(attempts) < 4:
            raise AudioDeviceError("no input device matching 'respeaker'")
        return feed

    heartbeat = AudioHeartbeat(0.5, loop.time())
    source = MonitoredSource(open_source, heartbeat, clock=loop.time, retry_initial_s=0.05, retry_max_s=0.1)
    async with asyncio.timeout(10):
        frames = source.frames()
        await feed.feed_silence(0.01)
        first = asyncio.ensure_future(anext(frames))
        await asyncio.sleep(0.02)
        assert heartbeat.alive(loop.time() + 5)  # suspended while there is no device: not a hang
        assert await first == bytes(320)
        assert not heartbeat.alive(loop.time() + 5)  # a device again: frames must keep coming
        await source.close()
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(attempts)]
    assert len(attempts) == 4 and gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] <= 0.2  # doubling, capped
    errors = [r.getMessage() for r in caplog.records if "microphone unavailable" in r.getMessage()]
    assert len(errors) == 3 and "retrying in" in errors[0] and all("Traceback" not in e for e in errors)


async def test_ringing_alert_stopped_by_control_socket_and_button(tmp_path: Path) -> None:
    """`avsd stop` (the control socket) and a tap both stop a ringing alarm; the LEDs blink white meanwhile."""
    from datetime import UTC, datetime, timedelta

    from avsd.avs.messages import Directive
    from avsd.control import ControlServer, send_command
    from avsd.hw.button import ButtonCommand, ButtonSettings
    from avsd.hw.leds import RecordingLed
    from avsd.hw.patterns import LedPattern
    from avsd.main import control_handlers
    from avsd.root import build_hardware
    from tests.harness import running_device

    async with asyncio.timeout(30), running_device(tmp_path) as device:
        daemon = device.daemon
        led = RecordingLed()
        hw = build_hardware(
            daemon, with_button(daemon.config, ButtonSettings(pin=17, bounce_s=0.01, hold_s=0.3, long_press_s=1.0)),
            "mock", asyncio.get_running_loop(), led=led,
        )
        sock = Path(tempfile.mkdtemp(prefix="avsd-ctl-")) / "control.sock"
        server = ControlServer(sock, control_handlers(daemon))
        await server.start()
        try:
            when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
            stamp = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
            for token in ("alarm-1", "alarm-2"):
                await device.emulator.push_directive(
                    Directive.new("Alerts", "SetAlert", {"token": token, "type": "ALARM", "scheduledTime": stamp})
                )
            while daemon.alerts.active_token is None:
                await asyncio.sleep(0.02)
            assert led.current is not None and led.current.name is LedPattern.ALERT
            first = daemon.alerts.active_token
            assert await asyncio.to_thread(send_command, sock, "stop") == f"ok {first}"
            while daemon.alerts.active_token in (None, first):
                await asyncio.sleep(0.02)
            second = daemon.alerts.active_token
            pin = hw.pin_factory.pin(17)  # type: ignore[attr-defined]
            pin.drive_low()
            await asyncio.sleep(0.05)
            pin.drive_high()
            while daemon.alerts.active_token == second:
                await asyncio.sleep(0.02)
            assert hw.commands == [ButtonCommand.STOP]  # a tap while ringing stops, it does not talk
            assert {first, second} == {"alarm-1", "alarm-2"}
            await asyncio.sleep(0.05)
            assert led.current.name is not LedPattern.ALERT
            assert await asyncio.to_thread(send_command, sock, "stop") == "none"
            assert (await asyncio.to_thread(send_command, sock, "bogus")).startswith("error unknown command")
        finally:
            await server.close()
            hw.close()
