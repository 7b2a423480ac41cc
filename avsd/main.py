"""``avsd run``: the appliance as systemd runs it — microphone (or a WAV), speaker, AVS, systemd notifications.

systemd protocol (Type=notify): READY=1 once the audio pipeline runs, online or offline (alarms ring offline);
STATUS= with the dialog state and connection; WATCHDOG=1 from the main loop only while microphone frames keep
arriving (a hung capture thread gets the service restarted); STOPPING=1 on SIGTERM; SIGHUP reloads the config.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from avsd.audio.source import AudioSource
from avsd.avs.client import ConnectionState
from avsd.avs.credentials import load_credentials
from avsd.config import Config
from avsd.daemon import Daemon, Parts
from avsd.playback.base import create_player
from avsd.state import Transition
from avsd.systemd import SystemdNotifier, audio_alive, run_watchdog
from avsd.wake.base import create_engine

_LOGGER = logging.getLogger(__name__)

# No microphone frame for this long means the capture path is hung (frames come every 10 ms).
AUDIO_STALL_S = 5.0
STOP_TIMEOUT_S = 5.0


def audio_opener(config: Config, input_wav: Path | None) -> object:
    """A function that opens the configured microphone, or the WAV given with --input."""
    if input_wav is not None:
        from avsd.audio.wav_source import WavFileSource

        return lambda: WavFileSource(input_wav, realtime=True, pad_silence_s=2.0)

    def open_microphone() -> AudioSource:
        from avsd.audio.mic import MicrophoneSource

        source = MicrophoneSource(config.audio.device_spec(), queue_frames=config.audio.queue_frames)
        source.start()
        return source

    return open_microphone


class StatusReporter:
    """STATUS= for systemctl status: the dialog state and the connection, updated on every change."""

    def __init__(self, notifier: SystemdNotifier) -> None:
        self._notifier = notifier
        self.dialog = "starting"
        self.connection = ConnectionState.DISCONNECTED

    def on_transition(self, transition: Transition) -> None:
        self.dialog = str(transition.state)
        self._send()

    def on_connection(self, state: ConnectionState) -> None:
        self.connection = state
        self._send()

    def _send(self) -> None:
        self._notifier.status(f"{self.dialog}; AVS {self.connection}")


async def run_daemon(config: Config, args: argparse.Namespace) -> int:
    # Unlinked device: say so once and exit 78, so systemd does not restart-loop; `avsd login` links it.
    load_credentials(config.credentials_path)
    notifier = SystemdNotifier()
    status = StatusReporter(notifier)
    input_wav: Path | None = getattr(args, "input", None)
    engine = create_engine(config.wake)
    parts = Parts(
        open_audio=audio_opener(config, input_wav),  # type: ignore[arg-type]
        speech_player=create_player(config.playback),
        engine=engine,
        transition_observers=[status.on_transition],
        connection_observers=[status.on_connection],
    )
    daemon = Daemon(config, parts)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None

    def on_stop_signal(name: str) -> None:
        _LOGGER.info("%s: stopping", name)
        notifier.stopping()
        main_task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop_signal, sig.name)

    def ready() -> None:
        notifier.ready()
        _LOGGER.info("avsd running (wake word engine %s, player %s)", engine.name, parts.speech_player.name)

    started = loop.time()

    def pipeline_alive() -> bool:
        # Before the first frame the pipeline counts as alive from start-up (a microphone may take a moment).
        return audio_alive(loop.time(), daemon.dialog.last_frame_time or started, AUDIO_STALL_S)

    watchdog_task: asyncio.Task[None] | None = None
    interval = notifier.watchdog_interval_s
    if interval is not None:
        watchdog_task = loop.create_task(run_watchdog(notifier, pipeline_alive, interval), name="watchdog")
    try:
        await daemon.run(stop_when_audio_ends=input_wav is not None, ready=ready)
    except asyncio.CancelledError:
        return 0
    finally:
        if watchdog_task is not None:
            watchdog_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog_task
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0

