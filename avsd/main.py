"""``avsd run``: the appliance as systemd runs it — microphone (or a WAV), speaker, button and LEDs, AVS, systemd.

systemd protocol (Type=notify): READY=1 once the audio pipeline runs, online or offline (alarms ring offline);
STATUS= with the dialog state and connection; WATCHDOG=1 from the main loop only while microphone frames keep
arriving (a hung capture thread gets the service restarted; privacy mute and a missing microphone suspend it, since
a closed or absent device is not a hung one); STOPPING=1 on SIGTERM; SIGHUP reloads the config.

The control socket (``avsd stop``) is served here too, see :mod:`avsd.control`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from avsd.appliance import (
    HANG_ENV,
    MonitoredSource,
    Reloader,
    StatusReporter,
    control_handlers,
)
from avsd.avs.credentials import load_credentials
from avsd.backends import Backend
from avsd.config import Config
from avsd.memory import limit_malloc_arenas
from avsd.root import build_appliance
from avsd.systemd import handle_reload, run_watchdog

_LOGGER = logging.getLogger(__name__)

__all__ = ["HANG_ENV", "MonitoredSource", "Reloader", "StatusReporter", "control_handlers", "run_daemon"]


async def run_daemon(config: Config, args: argparse.Namespace, *, config_path: Path | None = None) -> int:
    limit_malloc_arenas()  # before the daemon's threads start (avsd.memory)
    if config.avs.backend == Backend.ASSISTANT:
        # The offline assistant in this process: a local AVS server on loopback that the device talks to.
        from avsd.assistant.local import local_assistant

        async with local_assistant(config) as device_config:
            return await _run_daemon(device_config, args, config_path=config_path)
    return await _run_daemon(config, args, config_path=config_path)


async def _run_daemon(config: Config, args: argparse.Namespace, *, config_path: Path | None = None) -> int:
    # Unlinked device: say so once and exit 78, so systemd does not restart-loop; `avsd login` links it.
    load_credentials(config.credentials_path)
    loop = asyncio.get_running_loop()
    input_wav: Path | None = getattr(args, "input", None)
    appliance = build_appliance(
        config, input_wav=input_wav, hardware=getattr(args, "hardware", "none"), config_path=config_path, loop=loop
    )
    daemon, hardware, control, notifier = appliance.daemon, appliance.hardware, appliance.control, appliance.notifier
    heartbeat = appliance.heartbeat
    main_task = asyncio.current_task()
    assert main_task is not None

    def on_stop_signal(name: str) -> None:
        _LOGGER.info("%s: stopping", name)
        notifier.stopping()
        main_task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop_signal, sig.name)
    remove_reload = handle_reload(loop, notifier, appliance.reloader)

    def ready() -> None:
        notifier.ready()
        _LOGGER.info(
            "avsd running (wake word engine %s, player %s, hardware %s)",
            daemon.dialog.engine.name, daemon.parts.players.speech.name, hardware.kind,
        )

    watchdog_task: asyncio.Task[None] | None = None
    interval = notifier.watchdog_interval_s
    if interval is not None:
        watchdog_task = loop.create_task(
            run_watchdog(notifier, lambda: heartbeat.alive(loop.time()), interval), name="watchdog"
        )
    try:
        try:
            await control.start()
        except OSError as exc:  # `avsd stop` will not work, but the appliance does
            _LOGGER.error("no control socket at %s: %s", control.path, exc.strerror)
        await daemon.run(stop_when_audio_ends=input_wav is not None, ready=ready)
    except asyncio.CancelledError:
        if main_task.cancelling() == 0:
            raise
        return 0
    finally:
        remove_reload()
        if watchdog_task is not None:
            watchdog_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog_task
        await control.close()
        hardware.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0
