"""One device session wired together from the parts the composition root (:mod:`avsd.root`) picked.

    audio source ──frames──> DialogController ──Recognize──> AvsClient ──HTTP/2──> AVS (or the emulator)
        (mic/WAV)             (ring, wake word,                 │  downchannel + event answers
                               endpointer, state)               ▼
                                    ▲                   DirectiveSequencer ──> agents (speech, recognizer, system)
                                    └──── speech started/finished, StopCapture, ExpectSpeech ───┘

One asyncio loop; :meth:`Daemon.run` owns a TaskGroup with one named task per service. Threads (PortAudio, VLC,
gpiozero) enter the loop only through ``call_soon_threadsafe`` inside their own modules.

Every collaborator is passed in at construction (no part is set on another afterwards); parts that react to
others subscribe through :class:`~avsd.observers.Observers`, which isolates them. The connection has one owner,
the AVS client: the dialog, the outbox, the LEDs and systemd's STATUS observe it and read it from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from avsd.agents.alert_store import AlertStore
from avsd.agents.alerts import ACTIVITY_ID as ALERTS_ACTIVITY
from avsd.agents.alerts import AlertsAgent, event_from_json
from avsd.agents.audio_player import AudioPlayerAgent
from avsd.agents.capabilities import (
    CapabilitiesPublisher,
    HttpCapabilitiesApi,
    capabilities_body,
    capabilities_url,
    interfaces_from_context,
)
from avsd.agents.events import EventQueue
from avsd.agents.focus_agent import DIALOG_ACTIVITY, DialogFocus, FocusArbiter
from avsd.agents.notifications import NotificationsAgent
from avsd.agents.outbox import Outbox
from avsd.agents.playback_controller import PlaybackControllerAgent
from avsd.agents.sequencer import DirectiveSequencer
from avsd.agents.speaker import SpeakerAgent
from avsd.agents.speech_recognizer import SpeechRecognizerAgent
from avsd.agents.speech_synthesizer import SpeechSynthesizer
from avsd.agents.system import SystemAgent
from avsd.agents.template_runtime import NAMESPACE as TEMPLATE_RUNTIME
from avsd.agents.template_runtime import TemplateRuntimeAgent
from avsd.avs.attachments import AttachmentStore
from avsd.avs.auth import TokenProvider
from avsd.avs.client import AvsClient, ConnectionState, make_ssl_context
from avsd.avs.context import ContextRegistry
from avsd.avs.http import HttpClient
from avsd.avs.messages import Event
from avsd.config import Config
from avsd.dialog import DialogController
from avsd.errors import AvsConnectionError
from avsd.observers import FAILURES
from avsd.root import Parts

_LOGGER = logging.getLogger(__name__)


class Daemon:
    def __init__(self, config: Config, parts: Parts) -> None:
        self.config = config
        self.parts = parts
        ssl_context = make_ssl_context(config.avs.ca_file)
        self._lwa_http = HttpClient(ssl_context=ssl_context, timeout=60.0)
        self.tokens = TokenProvider(
            token_url=config.token_url(),
            credentials_path=config.credentials_path,
            http=self._lwa_http,
            refresh_ahead_s=config.auth.refresh_ahead_s,
        )
        self.context = ContextRegistry()
        self.attachments = AttachmentStore(config.attachments)
        self.sequencer = DirectiveSequencer(
            self._send_exception, config.sequencer
        )
        self.client = AvsClient(
            config.avs,
            self.tokens,
            context=self.context,
            on_directive=self.sequencer.submit,
            attachments=self.attachments,
            ssl_context=ssl_context,
        )
        self.events = EventQueue(self.client.send_event)
        # Dialog > Alerts > Content (§7): the dialog holds DIALOG while listening/thinking/speaking.
        self.focus = FocusArbiter(config.focus)
        self.dialog_focus = DialogFocus(self.focus)
        self.focus.register(DIALOG_ACTIVITY, self.dialog_focus)
        self.speech = SpeechSynthesizer(
            player=parts.players.speech,
            attachments=self.attachments,
            events=self.events,
            focus=self.dialog_focus,
        )
        self.dialog = DialogController(
            pipeline=parts.pipeline,
            client=self.client,
            sequencer=self.sequencer,
            send_event=self.events.send,
            speech=self.speech,
            connected=self.connected,
        )
        self.speech.observers.add(self.dialog.on_speech, name="DialogController.on_speech")
        self.system = SystemAgent(
            client=self.client, events=self.events, report_interval_s=config.daemon.inactivity_report_s
        )
        self.sequencer.register(self.speech)
        self.sequencer.register(SpeechRecognizerAgent(self.dialog))
        self.sequencer.register(self.system)
        # Context order follows the SDK's: every implemented interface reports its state (§5.2).
        self.context.register(self.dialog.recognizer_context)
        self.context.register(self.speech.context)
        self.client.add_state_observer(self._on_connection_state)
        self.dialog.machine.add_observer(self.system.user_activity, name="SystemAgent.user_activity")
        self.dialog.machine.add_observer(self.dialog_focus.on_transition, name="DialogFocus.on_transition")
        self._init_media()
        self._init_alerts()  # after _init_media: alerts take the ALERTS channel of its focus arbiter

    def connected(self) -> bool:
        """The connection fact, read from its one owner (the AVS client)."""
        return self.client.state is ConnectionState.CONNECTED

    @property
    def observer_failures(self) -> int:
        """Observer exceptions caught (and logged) in this process so far."""
        return sum(FAILURES.values())

    # ----- alerts, certified events, capabilities ------------------------------------------------------------

    def _init_alerts(self) -> None:
        state_dir = self.config.state_dir
        # Certified sender (§6.6, §9.2): alert events are stored and delivered in order once connected.
        self.outbox = Outbox(state_dir / "outbox.sqlite", self._send_certified, connected=False)
        self.alert_store = AlertStore(state_dir / "alerts.sqlite")
        self.alert_player = self.parts.players.alert
        self.alerts = AlertsAgent(
            store=self.alert_store,
            certified=self.outbox,
            events=self.events,
            player=self.alert_player,
            settings=self.config.alerts,
            focus=self.focus,
        )
        self.focus.register(ALERTS_ACTIVITY, self.alerts)
        self.sequencer.register(self.alerts)
        self.context.register(self.alerts.context)
        self.client.add_state_observer(self._on_connection_for_alerts)
        self.capabilities = CapabilitiesPublisher(
            put=HttpCapabilitiesApi(self._lwa_http, self.tokens).put,
            state_dir=state_dir,
            settings=self.config.capabilities,
        )
        self.capabilities_checked = asyncio.Event()  # set once the capabilities were published or found unchanged

    # ----- focus, speaker, music, notifications --------------------------------------------------------------

    def _init_media(self) -> None:
        config, state_dir = self.config, self.config.state_dir
        focus_settings = config.focus
        self.content_player = self.parts.players.content
        self.notification_player = self.parts.players.notification
        # One device volume (speech, music, notification sounds); alarms keep their own so they ring when muted.
        self.speaker = SpeakerAgent(
            events=self.events,
            players=[self.parts.players.speech, self.notification_player],
            content_players=[self.content_player],
            state_dir=state_dir,
            settings=config.speaker,
            duck_level=focus_settings.duck_level,
        )
        self.audio_player = AudioPlayerAgent(
            player=self.content_player,
            attachments=self.attachments,
            events=self.events,
            focus=self.focus,
            ducker=self.speaker,
            settings=config.audio_player,
            ca_file=config.playback.ca_file,
        )
        self.playback_controller = PlaybackControllerAgent(events=self.events, context=self.context.gather)
        self.notifications = NotificationsAgent(
            player=self.notification_player,
            state_dir=state_dir,
            settings=config.notifications,
        )
        for agent in (self.speaker, self.audio_player, self.notifications):
            self.sequencer.register(agent)
        # Display cards only when asked for: a screenless appliance does not declare TemplateRuntime.
        self.templates: TemplateRuntimeAgent | None = None
        if config.template_runtime.enabled:
            self.templates = TemplateRuntimeAgent(config.template_runtime)
            self.sequencer.register(self.templates)
        self.context.register(self.audio_player.context)
        self.context.register(self.speaker.context)
        self.context.register(self.notifications.context)

    async def _close_media(self) -> None:
        for closer in (self.audio_player.close, self.notifications.close, self.speaker.close,
                       self.content_player.close, self.notification_player.close):
            try:
                await closer()
            except Exception:
                _LOGGER.exception("closing %r failed", closer)

    async def _send_certified(self, body: bytes) -> None:
        await self.client.send_event(event_from_json(body))

    def _on_connection_for_alerts(self, state: ConnectionState) -> None:
        self.outbox.set_connected(state is ConnectionState.CONNECTED)

    async def _publish_capabilities(self) -> None:
        """Once connected (every agent registered, a token at hand): PUT the capabilities if they changed."""
        await self.client.wait_connected()
        interfaces = interfaces_from_context(self.context.gather())
        if self.templates is not None:
            interfaces.append(TEMPLATE_RUNTIME)
        body = capabilities_body(interfaces)
        await self.capabilities.publish(capabilities_url(self.client.base_url), body)
        self.capabilities_checked.set()

    async def _send_exception(self, event: Event) -> None:
        self.events.send(event)

    def _on_connection_state(self, state: ConnectionState) -> None:
        self.dialog.connection_changed(state is ConnectionState.CONNECTED)

    async def run(
        self,
        *,
        stop_when_audio_ends: bool = False,
        wait_for_connection_s: float | None = None,
        ready: Callable[[], None] | None = None,
        linger: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Run every service until cancelled (or, for a file input, until its audio has been handled and then
        ``linger`` has returned: ``avsd demo`` waits there for a timer the scenario set).

        The microphone starts at once, online or not (alarms ring offline); ``wait_for_connection_s`` holds a
        file input back until AVS is connected, so the demo's one utterance is not spoken into the void.
        """
        try:
            # Alerts are loaded before connecting: the first SynchronizeState must carry them (§6.6).
            await self.alerts.load()
            async with asyncio.TaskGroup() as group:
                group.create_task(self.alerts.run(), name="alerts")
                group.create_task(self.outbox.run(), name="outbox")
                group.create_task(self._publish_capabilities(), name="capabilities")
                group.create_task(self.client.run(), name="avs-client")
                group.create_task(self.sequencer.run(), name="directives")
                group.create_task(self.events.run(), name="events")
                group.create_task(self.system.run(), name="system")
                if wait_for_connection_s is not None:
                    try:
                        await self.client.wait_connected(wait_for_connection_s)
                    except TimeoutError:
                        raise AvsConnectionError(
                            f"could not connect to AVS at {self.client.base_url}: {self.client.last_error}"
                        ) from None
                open_audio = self.parts.open_audio
                audio = None
                if open_audio is not None:
                    audio = group.create_task(self.dialog.run_audio(open_audio), name="audio")
                if ready is not None:
                    ready()
                if stop_when_audio_ends and audio is not None:
                    await audio
                    await self.settle()
                    if linger is not None:
                        await linger()
                    raise _Finished
                await asyncio.Event().wait()
        except* _Finished:
            pass
        except* AvsConnectionError as group:
            raise group.exceptions[0] from None
        finally:
            await self.close()

    async def settle(self, timeout: float = 60.0) -> None:
        """Wait until the dialog is over (back to a resting state) and queued events are sent."""
        async with asyncio.timeout(timeout):
            await self.dialog.wait_until_over()
            await self.sequencer.idle()
            await self.events.drain()

    async def close(self) -> None:
        await self.dialog.close()
        with contextlib.suppress(Exception):
            await self.sequencer.close()
        with contextlib.suppress(Exception):
            await self.parts.players.speech.close()
        self.dialog.engine.close()
        with contextlib.suppress(Exception):
            await self.alert_player.close()
        await self._close_media()
        self.outbox.close()
        self.alert_store.close()
        await self._lwa_http.aclose()


class _Finished(Exception):
    pass


__all__ = ["Daemon", "Parts"]
