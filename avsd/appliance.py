"""The appliance's parts around a Daemon (``avsd run``): the monitored microphone that feeds the systemd watchdog,
systemd STATUS, the control socket's commands and the reload. Built by :func:`avsd.root.build_appliance`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from avsd.audio.frames import IDLE_BLOCK_FRAMES
from avsd.audio.source import AudioSource
from avsd.avs.backoff import Backoff
from avsd.avs.client import ConnectionState
from avsd.config import Config, changed_sections, load_config
from avsd.control import Handler
from avsd.daemon import Daemon
from avsd.errors import AudioDeviceError
from avsd.hw.wiring import Hardware
from avsd.root import RELOADABLE, rebuild
from avsd.state import DialogState, Transition
from avsd.systemd import AudioHeartbeat, SystemdNotifier

_LOGGER = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0
RETRY_MAX_S = 60.0
# Test hook: after this many seconds of audio the source stops yielding frames (a hung capture thread). Read only
# here; everything downstream (heartbeat, watchdog, sd_notify) is the production path being tested.
HANG_ENV = "AVSD_TEST_HANG_AUDIO_AFTER_S"

SourceOpener = Callable[[], Awaitable[AudioSource]]


class MonitoredSource:
    """The production audio source: opens the device with back-off and feeds the watchdog heartbeat.

    A missing or busy microphone gives one line per attempt and a retry after 1, 2, 4 ... 60 s, not a traceback
    loop. While it is being retried the heartbeat is suspended: no device is not a hung capture thread, and
    restarting the service would not conjure one up.
    """

    def __init__(
        self,
        open_source: SourceOpener,
        heartbeat: AudioHeartbeat,
        *,
        clock: Callable[[], float],
        retry_initial_s: float = 1.0,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self._open = open_source
        self._heartbeat = heartbeat
        self._clock = clock
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._inner: AudioSource | None = None
        self._block_frames = IDLE_BLOCK_FRAMES
        self.attempts = 0

    @property
    def block_frames(self) -> int:
        return self._block_frames

    @block_frames.setter
    def block_frames(self, value: int) -> None:
        self._block_frames = value
        if self._inner is not None:
            self._inner.block_frames = value

    async def _open_with_backoff(self) -> AudioSource:
        backoff = Backoff.exponential(self._retry_initial_s, self._retry_max_s)
        while True:
            self.attempts += 1
            try:
                return await self._open()
            except AudioDeviceError as exc:
                self._heartbeat.suspend()
                delay = backoff.next_delay()
                _LOGGER.error("microphone unavailable: %s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def frames(self) -> AsyncIterator[bytes]:
        inner = await self._open_with_backoff()
        self._inner = inner
        inner.block_frames = self._block_frames
        self._heartbeat.resume(self._clock())
        async for block in inner.frames():
            self._heartbeat.beat(self._clock())
            yield block

    async def close(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.close()


class HangingSource:
    """Test hook (:data:`HANG_ENV`): passes frames through for ``after_s`` seconds, then blocks forever."""

    def __init__(self, inner: AudioSource, after_s: float, clock: Callable[[], float]) -> None:
        self._inner = inner
        self._after_s = after_s
        self._clock = clock

    @property
    def block_frames(self) -> int:
        return self._inner.block_frames

    @block_frames.setter
    def block_frames(self, value: int) -> None:
        self._inner.block_frames = value

    async def frames(self) -> AsyncIterator[bytes]:
        start = self._clock()
        async for block in self._inner.frames():
            if self._clock() - start >= self._after_s:
                _LOGGER.warning("test hook %s: the audio source hangs now", HANG_ENV)
                await asyncio.Event().wait()
            yield block

    async def close(self) -> None:
        await self._inner.close()


class StatusReporter:
    """STATUS= for systemctl status: the dialog state and the connection (read from their owners), sent on every
    change of either."""

    def __init__(self, notifier: SystemdNotifier, daemon: Daemon) -> None:
        self._notifier = notifier
        self._daemon = daemon

    def on_transition(self, transition: Transition) -> None:
        self._send()

    def on_connection(self, state: ConnectionState) -> None:
        self._send()

    def _send(self) -> None:
        self._notifier.status(f"{self._daemon.dialog.state}; AVS {self._daemon.client.state}")


class Reloader:
    """``systemctl reload avsd``: re-read the file and apply what can be applied without dropping AVS."""

    def __init__(
        self, daemon: Daemon, hardware: Hardware | None, path: Path | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._daemon = daemon
        self._hardware = hardware
        self._path = path
        self._loop = loop
        self.reloads = 0

    async def __call__(self) -> None:
        old = self._daemon.config
        new = await asyncio.to_thread(load_config, self._path)  # a ConfigError keeps the old config
        changed = changed_sections(old, new)
        rebuild(self._daemon, self._hardware, old, new, self._loop)  # raising keeps the old config and parts
        applied: list[str] = [s for s in changed if s in RELOADABLE]
        restart: list[str] = [s for s in changed if s not in RELOADABLE]
        if "avs" in changed and _avs_needs_restart(old, new):
            restart.append("avs (only avs.endpoint applies without a restart)")
        if new.daemon.state_dir != old.daemon.state_dir:
            restart.append("daemon.state_dir")
        self.reloads += 1
        _LOGGER.info(
            "reload: changed %s; applied %s; needs a restart: %s",
            ", ".join(changed) or "nothing",
            ", ".join(applied) or "nothing",
            ", ".join(restart) or "nothing",
        )


def _avs_needs_restart(old: Config, new: Config) -> bool:
    return dataclasses.replace(old.avs, endpoint=new.avs.endpoint) != new.avs


def control_handlers(daemon: Daemon) -> dict[str, Handler]:
    """The commands of the control socket (see :mod:`avsd.control` for the protocol)."""

    async def stop(args: tuple[str, ...]) -> str:
        token = await daemon.alerts.stop_active()
        if token is not None:
            return f"ok {token}"
        if daemon.dialog.state in (DialogState.SPEAKING, DialogState.LISTENING, DialogState.THINKING):
            daemon.dialog.stop()
            return "ok speech"
        return "none"

    async def mute(args: tuple[str, ...]) -> str:
        daemon.dialog.toggle_mute()
        return "ok muted" if daemon.dialog.machine.muted else "ok unmuted"

    async def volume(args: tuple[str, ...]) -> str:
        if args == ("up",):
            daemon.speaker.volume_up()
        elif args == ("down",):
            daemon.speaker.volume_down()
        else:
            return "error usage: volume up|down"
        return f"ok {daemon.speaker.volume.user_volume}"

    def playback(name: str) -> Handler:
        async def press(args: tuple[str, ...]) -> str:
            getattr(daemon.playback_controller, name)()
            return "ok"

        return press

    async def state(args: tuple[str, ...]) -> str:
        return f"ok {daemon.dialog.state} {daemon.client.state}"

    handlers: dict[str, Handler] = {"stop": stop, "mute": mute, "volume": volume, "status": state}
    for name in ("play", "pause", "next", "previous"):
        handlers[name] = playback(name)
    return handlers


