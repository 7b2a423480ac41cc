"""The composition root: the only place that picks concrete classes and wires them together.

    audio source ──frames──> DialogController ──Recognize──> AvsClient ──HTTP/2──> AVS (or the emulator)
        (mic/WAV)             (ring, wake word,                 │  downchannel + event answers
                               endpointer, state)               ▼
                                    ▲                   DirectiveSequencer ──> agents (speech, recognizer, system)
                                    └──── speech started/finished, StopCapture, ExpectSpeech ───┘

One asyncio loop; :meth:`Daemon.run` owns a TaskGroup with one named task per service. Threads (PortAudio, VLC,
gpiozero) enter the loop only through ``call_soon_threadsafe`` inside their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from avsd.agents.events import EventQueue
from avsd.agents.sequencer import DirectiveSequencer
from avsd.agents.speech_recognizer import SpeechRecognizerAgent
from avsd.agents.speech_synthesizer import SpeechSynthesizer
from avsd.agents.system import SystemAgent
from avsd.audio.source import AudioSource
from avsd.avs.attachments import AttachmentStore
from avsd.avs.auth import TokenProvider
from avsd.avs.client import AvsClient, ConnectionState, make_ssl_context
from avsd.avs.context import ContextRegistry
from avsd.avs.messages import Event
from avsd.config import Config
from avsd.dialog import DialogController
from avsd.errors import AvsConnectionError
from avsd.playback.base import Player
from avsd.state import Transition
from avsd.wake.base import WakeEngine

_LOGGER = logging.getLogger(__name__)


@dataclass(slots=True)
class Parts:
    """Concrete parts the caller chooses (the CLI for a real device, `avsd demo`, tests)."""

    open_audio: Callable[[], AudioSource]
    speech_player: Player
    engine: WakeEngine
    transition_observers: list[Callable[[Transition], None]] = field(default_factory=list)
    connection_observers: list[Callable[[ConnectionState], None]] = field(default_factory=list)


class Daemon:
    def __init__(self, config: Config, parts: Parts) -> None:
        self.config = config
        self.parts = parts
        ssl_context = make_ssl_context(config.avs.ca_file)
        self._lwa_http = httpx.AsyncClient(http2=True, verify=ssl_context, timeout=60.0)
        self.tokens = TokenProvider(
            token_url=config.token_url(),
            credentials_path=config.credentials_path,
            http=self._lwa_http,
            refresh_ahead_s=config.auth.refresh_ahead_s,
        )
        self.context = ContextRegistry()
        self.attachments = AttachmentStore()
        self.sequencer = DirectiveSequencer(self._send_exception)
        self.client = AvsClient(
            config.avs,
            self.tokens,
            context=self.context,
            on_directive=self.sequencer.submit,
            attachments=self.attachments,
            ssl_context=ssl_context,
        )
        self.events = EventQueue(self.client.send_event)
        self.dialog = DialogController(
            settings=config.dialog,
            endpointing=config.endpointing,
            engine=parts.engine,
            client=self.client,
            sequencer=self.sequencer,
            send_event=self.events.send,
            keyword=config.wake.keyword,
        )
        self.speech = SpeechSynthesizer(
            player=parts.speech_player,
            attachments=self.attachments,
            events=self.events,
            observer=self.dialog,
        )
        self.dialog.speech = self.speech
        self.system = SystemAgent(client=self.client, events=self.events)
        self.sequencer.register(self.speech)
        self.sequencer.register(SpeechRecognizerAgent(self.dialog))
        self.sequencer.register(self.system)
        # Context order follows the SDK's: every implemented interface reports its state (§5.2).
        self.context.register(self.dialog.recognizer_context)
        self.context.register(self.speech.context)
        for observer in parts.transition_observers:
            self.dialog.machine.add_observer(observer)
        self.client.add_state_observer(self._on_connection_state)
        for connection_observer in parts.connection_observers:
            self.client.add_state_observer(connection_observer)
        self.dialog.machine.add_observer(self._on_transition)

    async def _send_exception(self, event: Event) -> None:
        self.events.send(event)

    def _on_connection_state(self, state: ConnectionState) -> None:
        self.dialog.set_online(state is ConnectionState.CONNECTED)

    def _on_transition(self, transition: Transition) -> None:
        self.system.user_activity(transition)

    async def run(
        self,
        *,
        stop_when_audio_ends: bool = False,
        wait_for_connection_s: float | None = None,
        ready: Callable[[], None] | None = None,
    ) -> None:
        """Run every service until cancelled (or, for a file input, until its audio has been handled).

        The microphone starts at once, online or not (alarms ring offline); ``wait_for_connection_s`` holds a
        file input back until AVS is connected, so the demo's one utterance is not spoken into the void.
        """
        try:
            async with asyncio.TaskGroup() as group:
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
                audio = group.create_task(self.dialog.run_audio(self.parts.open_audio), name="audio")
                if ready is not None:
                    ready()
                if stop_when_audio_ends:
                    await audio
                    await self.settle()
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
        from avsd.state import DialogState

        async with asyncio.timeout(timeout):
            while self.dialog.state not in (DialogState.IDLE, DialogState.OFFLINE, DialogState.MUTED) or (
                self.dialog.has_dialog
            ):
                await asyncio.sleep(0.05)
            await self.sequencer.idle()
            await self.events.drain()

    async def close(self) -> None:
        await self.dialog.close()
        with contextlib.suppress(Exception):
            await self.sequencer.close()
        with contextlib.suppress(Exception):
            await self.parts.speech_player.close()
        self.parts.engine.close()
        await self._lwa_http.aclose()


class _Finished(Exception):
    pass


__all__ = ["Daemon", "Parts"]
