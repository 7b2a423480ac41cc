"""The composition root: the one place that picks concrete classes.

    config ──> select_engine / select_player / build_pipeline ──> Parts ──> Daemon (wires client, sequencer,
                                                                            agents, dialog; daemon.py)
    front-ends:  avsd run (main.py)  ──build_appliance──> Daemon + Hardware + control socket + watchdog
                 avsd demo (demo.py) ──build_daemon─────> Daemon with a WAV source and WAV-sink players
                 tests (harness.py)  ──build_daemon─────> Daemon with a fed source
                 headless sessions   ──build_session────> Daemon with CapturePlayers, no microphone, no hardware
                 library, avsd ask   ──build_headless_session──> HeadlessSession (concurrent asks, replies as received)

Protocol modules (``avsd/wake/base.py``, ``avsd/playback/base.py``) define seams only; which engine, which player
backend, which hardware is chosen here, from the config, and handed to the parts that use them at construction.
A reload (:func:`rebuild`) builds the changed parts through the same functions (so a reload to OPUS checks libopus
as a start does, and resizes the ring buffer) and hands them over whole; it never edits a part's internals.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from avsd.audio.opus import OPUS_FORMAT, require_opus
from avsd.audio.source import AudioSource
from avsd.config import Config
from avsd.errors import PlaybackError
from avsd.hw.factory import HardwareError
from avsd.playback.base import BACKENDS, PlaybackSettings, Player
from avsd.recognize import VoicePipeline
from avsd.state import DialogState, Transition
from avsd.wake.base import EngineName, WakeEngine, WakeSettings

if TYPE_CHECKING:
    from avsd.appliance import Reloader, SourceOpener, StatusReporter
    from avsd.avs.client import ConnectionSettings
    from avsd.avs.credentials import Credentials
    from avsd.control import ControlServer
    from avsd.daemon import Daemon
    from avsd.hw.leds import Led, LedSettings
    from avsd.hw.wiring import Hardware
    from avsd.session import HeadlessSession
    from avsd.systemd import AudioHeartbeat, SystemdNotifier

_LOGGER = logging.getLogger(__name__)


# ----- wake word, players ---------------------------------------------------------------------------------------


def select_engine(settings: WakeSettings) -> WakeEngine:
    """The configured wake-word engine. Raises WakeWordError with an actionable message when it cannot start.

    ``cascade`` (the default) is microWakeWord plus openWakeWord behind a speech gate, under one policy
    (avsd.wake.cascade); ``micro`` / ``openwakeword`` are one model each under the same policy."""
    name = EngineName(settings.engine)
    if name is EngineName.NONE:
        from avsd.wake.null import NullEngine

        return NullEngine()
    if name is EngineName.PORCUPINE:
        from avsd.wake.porcupine import PorcupineEngine

        return PorcupineEngine(settings)
    from avsd.wake.scored import ScoredEngine, Scorer

    scorers: list[Scorer] = []
    if name in (EngineName.MICRO, EngineName.CASCADE):
        from avsd.wake.micro import MicroScorer

        scorers.append(MicroScorer(settings.keyword))
    if name in (EngineName.OPENWAKEWORD, EngineName.CASCADE):
        from avsd.wake.oww import OpenWakeWordScorer

        oww: Scorer = OpenWakeWordScorer(settings.keyword)
        if name is EngineName.CASCADE:
            from avsd.wake.cascade import GatedScorer, SpeechGate

            oww = GatedScorer(oww, SpeechGate(settings.gate_db))
        scorers.append(oww)
    return ScoredEngine(settings, scorers, name=str(name))


def select_player(settings: PlaybackSettings, *, name: str = "speech") -> Player:
    """The player for ``settings.backend``; ``auto`` is VLC when libvlc loads, else PCM (and says so)."""
    # Local imports: the vlc backend must not be loaded for pcm, nor PortAudio for the WAV sink.
    from avsd.playback.pcm import PcmPlayer, WavSinkPlayer

    backend = settings.backend
    if backend not in BACKENDS:
        raise PlaybackError(f"unknown playback backend {backend!r} (choose one of {', '.join(BACKENDS)})")
    player: Player
    if backend == "wav":
        player = WavSinkPlayer(
            Path(settings.wav_dir or "."), label=name, realtime=settings.wav_realtime, ca_file=settings.ca_file
        )
    elif backend == "pcm":
        player = PcmPlayer(settings.output_device, label=name, ca_file=settings.ca_file)
    else:
        from avsd.playback.vlcplayer import VlcPlayer, VlcUnavailableError

        try:
            player = VlcPlayer(settings, label=name)
        except VlcUnavailableError as exc:
            if backend == "vlc":
                raise
            _LOGGER.warning("%s player: libvlc unavailable (%s); falling back to the pcm backend", name, exc)
            player = PcmPlayer(settings.output_device, label=name, ca_file=settings.ca_file)
    _LOGGER.info("%s player: using the %s backend", name, player.name)
    return player


@dataclass(frozen=True, slots=True)
class Players:
    """The four players of a session: speech (Speak), content (AudioPlayer), alert, notification."""

    speech: Player
    content: Player
    alert: Player
    notification: Player

    def all(self) -> tuple[Player, ...]:
        return (self.speech, self.content, self.alert, self.notification)


def build_players(settings: PlaybackSettings) -> Players:
    return Players(
        speech=select_player(settings, name="speech"),
        content=select_player(settings, name="content"),
        alert=select_player(settings, name="alert"),
        notification=select_player(settings, name="notification"),
    )


def capture_players() -> Players:
    """Players that keep what they would play in memory (:class:`~avsd.playback.pcm.CapturePlayer`): the reply
    audio of a headless session."""
    from avsd.playback.pcm import CapturePlayer

    return Players(
        speech=CapturePlayer(label="speech"),
        content=CapturePlayer(label="content"),
        alert=CapturePlayer(label="alert"),
        notification=CapturePlayer(label="notification"),
    )


def build_pipeline(config: Config, *, engine: WakeEngine | None = None) -> VoicePipeline:
    """The audio path's parts. OPUS is checked here, so a missing libopus is a start-up (or reload) error, not a
    failure in the middle of a dialog."""
    if config.dialog.audio_format == OPUS_FORMAT:
        require_opus()
    return VoicePipeline(
        settings=config.dialog,
        endpointing=config.endpointing,
        engine=engine if engine is not None else select_engine(config.wake),
        keyword=config.wake.keyword,
    )


# ----- sessions -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parts:
    """What a Daemon is built from. ``open_audio`` None: no microphone (a headless session)."""

    players: Players
    pipeline: VoicePipeline
    open_audio: Callable[[], AudioSource] | None = None


def build_daemon(
    config: Config,
    *,
    open_audio: Callable[[], AudioSource] | None,
    players: Players | None = None,
    engine: WakeEngine | None = None,
) -> Daemon:
    """A whole device session: AVS client, sequencer, every agent, the dialog controller and the given parts
    (players from ``config.playback`` and the engine from ``config.wake`` unless passed)."""
    from avsd.daemon import Daemon

    pipeline = build_pipeline(config, engine=engine)
    return Daemon(config, Parts(players or build_players(config.playback), pipeline, open_audio))


def build_session(
    config: Config, *, players: Players | None = None, open_audio: Callable[[], AudioSource] | None = None
) -> Daemon:
    """A headless session (library, ``ask``, virtual device, one phone call): the same client core and agents,
    players that capture the reply (:func:`capture_players` unless given), no wake word, no hardware."""
    from avsd.wake.null import NullEngine

    headless = dataclasses.replace(config, wake=dataclasses.replace(config.wake, engine=EngineName.NONE.value))
    return build_daemon(headless, open_audio=open_audio, players=players or capture_players(), engine=NullEngine())


def build_headless_session(
    settings: ConnectionSettings,
    *,
    credentials: Credentials | None = None,
    credentials_path: Path | None = None,
    token_url: str = "",
    ask_timeout_s: float = 30.0,
) -> HeadlessSession:
    """The library's and ``avsd ask``'s session (:mod:`avsd.session`): the same client core and sequencer, asks
    answered side by side on one connection, each keeping its directives and its audio as received (MP3).

    Not :func:`build_session`: that one is a whole device (one current dialog, replies decoded by CapturePlayers,
    a state directory and a credentials file), which a library caller with ten concurrent asks, in-memory
    credentials or none does not have. Credentials: ``credentials`` (kept in memory), else ``credentials_path``
    (avsd's credentials file), else none (a local server that accepts any token). Call inside a running loop.
    """
    from avsd.agents.events import EventQueue
    from avsd.agents.sequencer import DirectiveSequencer, SequencerSettings
    from avsd.agents.speech_recognizer import SpeechRecognizerAgent
    from avsd.agents.system import SystemAgent
    from avsd.avs.attachments import AttachmentStore
    from avsd.avs.auth import TokenProvider
    from avsd.avs.client import AvsClient, make_ssl_context
    from avsd.avs.context import ContextRegistry
    from avsd.avs.http import HttpClient
    from avsd.avs.messages import Directive, Event
    from avsd.session import AnonymousTokens, HeadlessSession, headless_context

    ssl_context = make_ssl_context(settings.ca_file)
    lwa_http: HttpClient | None = None
    tokens: TokenProvider
    if credentials is None and credentials_path is None:
        tokens = AnonymousTokens()
    else:
        lwa_http = HttpClient(ssl_context=ssl_context, timeout=60.0)
        tokens = TokenProvider(
            token_url=token_url, credentials_path=credentials_path, http=lwa_http, credentials=credentials
        )
    context = ContextRegistry()
    for provider in headless_context():
        context.register(provider)
    route: list[Callable[[Directive], None]] = []  # the session's router, once it exists
    events: list[EventQueue] = []

    async def send_exception(event: Event) -> None:
        events[0].send(event)

    sequencer = DirectiveSequencer(send_exception, SequencerSettings())
    attachments = AttachmentStore()
    client = AvsClient(settings, tokens, context=context, on_directive=lambda d: route[0](d),
                       attachments=attachments, ssl_context=ssl_context)
    events.append(EventQueue(client.send_event))
    system = SystemAgent(client=client, events=events[0])
    session = HeadlessSession(client=client, sequencer=sequencer, events=events[0], system=system,
                              attachments=attachments, tokens=tokens, lwa_http=lwa_http, ask_timeout_s=ask_timeout_s)
    route.append(session.route)
    sequencer.register(system)
    sequencer.register(SpeechRecognizerAgent(session))
    return session


def select_led_driver(settings: LedSettings, *, pin_factory: object | None = None) -> Led:
    """The driver for ``led.kind`` (raises HardwareError when its pins or bus cannot be opened)."""
    from avsd.hw.leds import Apa102Ring, NullLed, RgbLed, SingleLed, TerminalLed

    if settings.kind == "single":
        return SingleLed(settings, pin_factory=pin_factory)
    if settings.kind == "rgb":
        return RgbLed(settings, pin_factory=pin_factory)
    if settings.kind == "apa102":
        return Apa102Ring(settings, pin_factory=pin_factory)
    if settings.kind == "terminal":
        return TerminalLed(settings.pixels)
    return NullLed()


def select_led(kind: str, settings: LedSettings, pin_factory: object | None) -> Led:
    """``--hardware mock`` draws the LEDs in the terminal; ``none`` has none unless ``led.kind = "terminal"``;
    otherwise the configured driver on ``pin_factory`` (a driver that cannot start: no LEDs, said once)."""
    from avsd.hw.leds import NullLed, TerminalLed

    if kind == "mock":
        return TerminalLed(settings.pixels)
    if kind == "none" and settings.kind != "terminal":
        return NullLed()
    try:
        return select_led_driver(settings, pin_factory=pin_factory)
    except HardwareError as exc:
        _LOGGER.error("no LEDs: %s", exc)
        return NullLed()


def build_hardware(
    daemon: Daemon,
    config: Config,
    kind: str,
    loop: asyncio.AbstractEventLoop,
    *,
    pin_factory: object | None = None,
    led: Led | None = None,
) -> Hardware:
    """The button and LEDs for ``--hardware auto|mock|none``. ``pin_factory`` / ``led``: use these (tests pass a
    MockFactory or a recording LED) instead of the ones ``kind`` and ``config.led`` pick."""
    from avsd.hw.factory import pin_factory_for
    from avsd.hw.wiring import HARDWARE_KINDS, Hardware

    if kind not in HARDWARE_KINDS:
        raise HardwareError(f"unknown --hardware {kind!r}; choose one of {', '.join(HARDWARE_KINDS)}")
    button = config.button
    owns_factory, explicit = False, pin_factory is not None
    uses_gpio = kind != "none" and (button.pin is not None or config.led.kind in ("single", "rgb", "apa102"))
    if pin_factory is None and kind == "mock":
        pin_factory, owns_factory = pin_factory_for("mock"), True
        # gpiozero's software SPI builds devices without passing the factory on (gpiozero 2.0.1, pins/spi.py).
        from gpiozero import Device

        Device.pin_factory = pin_factory
    elif pin_factory is None and uses_gpio:
        try:
            pin_factory = pin_factory_for("auto")
        except HardwareError as exc:
            _LOGGER.error("GPIO unavailable, running without button and LEDs: %s", exc)
            kind = "none"
    return Hardware(
        daemon,
        kind=kind,
        button=button,
        loop=loop,
        led=led if led is not None else select_led("auto" if explicit else kind, config.led, pin_factory),
        pin_factory=pin_factory,
        owns_factory=owns_factory,
    )


# ----- the appliance (`avsd run`) --------------------------------------------------------------------------------


def select_source(config: Config, input_wav: Path | None) -> SourceOpener:
    """Opens the configured microphone (raising AudioDeviceError when it is missing or busy), or the WAV."""
    from avsd.appliance import HANG_ENV, HangingSource

    async def open_source() -> AudioSource:
        source: AudioSource
        if input_wav is not None:
            from avsd.audio.wav_source import WavFileSource

            source = WavFileSource(input_wav, realtime=True, pad_silence_s=2.0)
        else:
            from avsd.audio.mic import MicrophoneSource

            mic = MicrophoneSource(config.audio.device_spec(), queue_frames=config.audio.queue_frames)
            try:
                await mic.start()
            except BaseException:
                await mic.close()
                raise
            source = mic
        hang = os.environ.get(HANG_ENV)
        if hang:  # test hook: the source stops yielding after this many seconds (a hung capture thread)
            source = HangingSource(source, float(hang), asyncio.get_running_loop().time)
        return source

    return open_source


@dataclass(frozen=True, slots=True)
class Appliance:
    """Everything ``avsd run`` runs: the daemon and the parts around it."""

    daemon: Daemon
    hardware: Hardware
    control: ControlServer
    notifier: SystemdNotifier
    heartbeat: AudioHeartbeat
    status: StatusReporter
    reloader: Reloader


def build_appliance(
    config: Config,
    *,
    input_wav: Path | None,
    hardware: str,
    config_path: Path | None,
    loop: asyncio.AbstractEventLoop,
) -> Appliance:
    """The appliance: a microphone (or WAV) that feeds the systemd watchdog's heartbeat, the daemon, the button
    and LEDs, systemd STATUS, the control socket and the reload."""
    from avsd.appliance import MonitoredSource, Reloader, StatusReporter, control_handlers
    from avsd.control import ControlServer, socket_path
    from avsd.systemd import AudioHeartbeat, SystemdNotifier

    notifier = SystemdNotifier()
    # No frame for audio.stall_timeout_s means the capture path is hung (frames come every 10-100 ms).
    heartbeat = AudioHeartbeat(config.audio.stall_timeout_s, loop.time())
    opener = select_source(config, input_wav)
    daemon = build_daemon(config, open_audio=lambda: MonitoredSource(opener, heartbeat, clock=loop.time))
    status = StatusReporter(notifier, daemon)
    daemon.dialog.machine.add_observer(status.on_transition, name="StatusReporter.on_transition")
    daemon.client.add_state_observer(status.on_connection)

    def on_mute(transition: Transition) -> None:
        # Privacy mute closes the microphone: no frames then is not a hang.
        if transition.state is DialogState.MUTED:
            heartbeat.suspend()
        elif transition.previous is DialogState.MUTED:
            heartbeat.resume(loop.time())

    daemon.dialog.machine.add_observer(on_mute, name="watchdog mute")
    hw = build_hardware(daemon, config, hardware, loop)
    return Appliance(
        daemon=daemon,
        hardware=hw,
        control=ControlServer(socket_path(config.state_dir), control_handlers(daemon)),
        notifier=notifier,
        heartbeat=heartbeat,
        status=status,
        reloader=Reloader(daemon, hw, config_path, loop),
    )


# ----- reload ---------------------------------------------------------------------------------------------------

# Sections a reload applies without a restart; any other changed section is logged as needing a restart.
RELOADABLE = frozenset({"daemon", "avs", "wake", "endpointing", "dialog", "speaker", "button"})


def rebuild(
    daemon: Daemon, hardware: Hardware | None, old: Config, new: Config, loop: asyncio.AbstractEventLoop
) -> None:
    """Apply ``new`` to a running session: build what changed through the root and hand it over whole. Raises
    (keeping everything as it was) when a new part cannot be built, e.g. OPUS without libopus."""
    pipeline: VoicePipeline | None = None
    if (new.wake, new.dialog, new.endpointing) != (old.wake, old.dialog, old.endpointing):
        engine = select_engine(new.wake) if new.wake != old.wake else daemon.dialog.engine
        try:
            pipeline = build_pipeline(new, engine=engine)
        except BaseException:
            if engine is not daemon.dialog.engine:
                engine.close()
            raise
    # Nothing below raises: the new config is applied completely or not at all.
    if new.daemon.log_level != old.daemon.log_level:
        logging.getLogger("avsd").setLevel(new.daemon.log_level.upper())
    if new.avs.endpoint != old.avs.endpoint:
        daemon.client.set_endpoint(new.avs.endpoint)
    if pipeline is not None:
        daemon.dialog.use_pipeline(pipeline)
        if new.wake != old.wake:
            _LOGGER.info("wake-word engine rebuilt (%s)", pipeline.engine.name)
    if new.speaker != old.speaker:
        daemon.speaker.settings = new.speaker
    if new.button != old.button and hardware is not None:
        hardware.reconfigure(new.button, loop)
    daemon.config = new


__all__ = [
    "RELOADABLE",
    "Appliance",
    "Parts",
    "Players",
    "build_appliance",
    "build_daemon",
    "build_hardware",
    "build_headless_session",
    "build_pipeline",
    "build_players",
    "build_session",
    "capture_players",
    "rebuild",
    "select_engine",
    "select_led",
    "select_led_driver",
    "select_player",
    "select_source",
]
