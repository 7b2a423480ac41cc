"""systemd integration: sd_notify (READY/STATUS/WATCHDOG/STOPPING/RELOADING), the audio watchdog, journald.

Everything here is a no-op outside systemd (no ``NOTIFY_SOCKET``), so the daemon calls it unconditionally.

The watchdog is petted from the **main asyncio loop**, and only while the audio pipeline proves it is alive (a
capture frame arrived recently). A blocked loop or a hung capture thread therefore both stop the petting, and
systemd (``WatchdogSec=``) kills and restarts the service. A helper thread that pets unconditionally would
hide exactly the hangs the watchdog exists for.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from avsd.logredact import protect
from avsd.tasks import TaskSet

logger = logging.getLogger(__name__)

# systemd-python is an optional extra ("systemd"); the plain socket below speaks the same protocol.
# Imported by name because this module is itself called "systemd" and mypy would otherwise confuse the two.
_sd_daemon: Any
try:
    _sd_daemon = importlib.import_module("systemd.daemon")
except ImportError:  # pragma: no cover - depends on the installation
    _sd_daemon = None


class SystemdNotifier:
    """Sends sd_notify messages. ``env`` defaults to the process environment.

    With the process environment and systemd-python importable, messages go through libsystemd's
    ``sd_notify``; otherwise (or when an explicit ``env`` is given, as tests do) through a plain
    ``AF_UNIX``/``SOCK_DGRAM`` datagram to ``$NOTIFY_SOCKET``, including abstract sockets written ``@name``.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._use_libsystemd = env is None and _sd_daemon is not None
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._address = self._env.get("NOTIFY_SOCKET", "")
        self.enabled: bool = bool(self._address)
        self._lock = threading.Lock()
        self._warned = False

    @property
    def watchdog_interval_s(self) -> float | None:
        """Half of ``WATCHDOG_USEC`` (systemd's advice), or None when the watchdog is off or meant for another
        pid."""
        usec = self._env.get("WATCHDOG_USEC", "")
        if not self.enabled or not usec:
            return None
        pid = self._env.get("WATCHDOG_PID", "")
        if pid and pid != str(os.getpid()):
            return None
        try:
            value = int(usec)
        except ValueError:
            logger.warning("ignoring malformed WATCHDOG_USEC=%r", usec)
            return None
        return value / 1_000_000 / 2 if value > 0 else None

    def ready(self) -> None:
        self._send("READY=1")

    def status(self, text: str) -> None:
        # One line: a newline would start a new (unintended) assignment in the notify message.
        self._send("STATUS=" + " ".join(text.split()))

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def reloading(self) -> None:
        """Announce a reload; call :meth:`ready` when the new config is in use.

        MONOTONIC_USEC is required by ``Type=notify-reload`` (systemd >= 253) and harmless before.
        """
        self._send(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def _send(self, message: str) -> None:
        if not self.enabled:
            return
        try:
            if self._use_libsystemd:
                assert _sd_daemon is not None
                _sd_daemon.notify(message)
            else:
                self._send_datagram(message.encode())
        except OSError as exc:
            # Never fatal: a missing socket must not take the appliance down. Warn once, not every 15 s.
            if not self._warned:
                self._warned = True
                logger.warning("sd_notify to %s failed: %s", self._address, exc)

    def _send_datagram(self, data: bytes) -> None:
        address = self._address
        if address.startswith("@"):
            address = "\0" + address[1:]  # Linux abstract namespace
        with self._lock, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(data, address)


def audio_alive(now: float, last_frame_time: float | None, max_age_s: float) -> bool:
    """True when a capture frame arrived within ``max_age_s`` of ``now``. Pure."""
    return last_frame_time is not None and now - last_frame_time <= max_age_s


class AudioHeartbeat:
    """The capture path's proof of life, shared between the capture thread and the main loop.

    Not a frozen dataclass: it is the one piece of state the capture thread writes. A single float attribute
    store is atomic in CPython, so :meth:`beat` is safe from any thread without a lock and never blocks audio.
    While the microphone is deliberately closed (privacy mute) the heartbeat is *suspended* and counts as
    alive.
    """

    __slots__ = ("_last", "_suspended", "max_age_s")

    def __init__(self, max_age_s: float, now: float) -> None:
        self.max_age_s = max_age_s
        self._last: float | None = now  # grace period from start-up: the microphone opens after this object
        self._suspended = False

    @property
    def last_frame_time(self) -> float | None:
        return self._last

    def beat(self, now: float) -> None:
        """Called by the capture path for every frame (or every few frames)."""
        self._last = now

    def suspend(self) -> None:
        """The microphone is closed on purpose (privacy mute): no frames is not a hang."""
        self._suspended = True

    def resume(self, now: float) -> None:
        """The microphone is reopened: give it ``max_age_s`` to deliver its first frame."""
        self._last = now
        self._suspended = False

    def alive(self, now: float) -> bool:
        return self._suspended or audio_alive(now, self._last, self.max_age_s)


async def run_watchdog(notifier: SystemdNotifier, is_alive: Callable[[], bool], interval_s: float) -> None:
    """Pet the systemd watchdog every ``interval_s`` while ``is_alive()``; run this as a task on the main
    loop.

    When the pipeline stops proving it is alive, log once and stop petting; systemd then restarts the service
    after ``WatchdogSec``. If it recovers before that, petting resumes (and that is logged once too). Returns
    at once when the notifier is disabled.
    """
    if not notifier.enabled:
        return
    if interval_s <= 0:
        raise ValueError(f"watchdog interval must be positive, got {interval_s}")
    petting = True
    while True:
        try:
            alive = is_alive()
        except Exception:  # the liveness probe failing is itself a reason to stop petting
            logger.exception("watchdog liveness check failed")
            alive = False
        if alive:
            if not petting:
                logger.warning("audio pipeline alive again; resuming the systemd watchdog")
                petting = True
            notifier.watchdog()
        elif petting:
            logger.error("audio pipeline stalled; no longer petting the systemd watchdog (expect a restart)")
            petting = False
        await asyncio.sleep(interval_s)


def handle_reload(
    loop: asyncio.AbstractEventLoop, notifier: SystemdNotifier, reload: Callable[[], Awaitable[None]]
) -> Callable[[], None]:
    """``systemctl reload avsd`` (ExecReload sends SIGHUP): RELOADING=1, ``await reload()``, READY=1.

    A reload that raises (say a ConfigError in the edited file) is logged and reported in STATUS; the daemon keeps
    running on the config it had. SIGHUPs arriving during a reload are coalesced into one more reload. Returns a
    function that removes the handler. Call on the loop thread.
    """
    state = {"running": False, "again": False}
    tasks = TaskSet(logger)

    async def _reload() -> None:
        while True:
            state["again"] = False
            notifier.reloading()
            try:
                await reload()
            except Exception as exc:
                logger.error("reload failed, keeping the previous configuration: %s", exc)
                notifier.status(f"reload failed: {exc}")
            else:
                logger.info("configuration reloaded")
            notifier.ready()
            if not state["again"]:
                state["running"] = False
                return

    def _on_sighup() -> None:
        if state["running"]:
            state["again"] = True
            return
        state["running"] = True
        tasks.spawn(_reload(), "reload")

    def _remove() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    loop.add_signal_handler(signal.SIGHUP, _on_sighup)
    return _remove


def journal_handler(env: Mapping[str, str] | None = None) -> logging.Handler | None:
    """A journald handler when stderr goes to the journal (``JOURNAL_STREAM`` set) and systemd-python is
    installed.

    The journal stamps each entry itself, so the format carries no timestamp; the logger name goes into the
    message and the level into PRIORITY.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if not environ.get("JOURNAL_STREAM"):
        return None
    try:
        journal: Any = importlib.import_module("systemd.journal")
    except ImportError:
        return None
    handler: logging.Handler = journal.JournalHandler(SYSLOG_IDENTIFIER="avsd")
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    return protect(handler)  # tokens never reach the journal
