"""The voice pipeline's controller: frames in, dialogs out.

Every 10 ms frame goes into a ring buffer (>= 2 s), then to whichever stage the dialog state asks for:

    IDLE / THINKING / SPEAKING   -> wake-word engine (boosted threshold while the device speaks)
    LISTENING                    -> the open Recognize upload + local endpointing (webrtcvad)
    EXPECTING                    -> VAD waits for the user to start answering an ExpectSpeech

A dialog starts from a wake word (upload starts ``preroll_s`` before the wake word, with ``wakeWordIndices``), a
button tap (TAP), a hold (PRESS_AND_HOLD, capture until release, CLOSE_TALK) or an answered ExpectSpeech (its
initiator echoed verbatim). Capture ends on local end of speech, cloud ``StopCapture``, button release or the
length cap, whichever comes first. Starting a dialog first cancels the previous one (stops its speech, drops its
directives) and waits for that to finish.

The state lives in :class:`~avsd.state.DialogMachine`; this module turns audio, buttons, directives and timers into
its triggers and carries out what each transition means. Frame handling is synchronous and allocation-light;
everything that waits runs in tasks.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from avsd.audio.endpointer import EndpointerSettings, EndpointResult
from avsd.audio.frames import ACTIVE_BLOCK_FRAMES, FRAME_BYTES, IDLE_BLOCK_FRAMES, SAMPLE_RATE
from avsd.audio.opus import OPUS_FORMAT, OpusEncoder, encode_frames
from avsd.audio.ring import RingBuffer
from avsd.audio.source import AudioSource
from avsd.audio.vad import VadEndpointer
from avsd.avs.backoff import Backoff
from avsd.avs.client import EventResult
from avsd.avs.messages import Event, context_entry
from avsd.errors import AudioDeviceError, AvsError
from avsd.recognize import (
    Capture,
    DialogSettings,
    Initiator,
    VoicePipeline,
    recognize_event,
    ring_seconds,
)
from avsd.state import DialogMachine, DialogState, Transition, Trigger
from avsd.tasks import TaskSet
from avsd.wake.base import Detection, WakeEngine

_LOGGER = logging.getLogger(__name__)
S, T = DialogState, Trigger

class RecognizeSender(Protocol):
    async def send_event(self, event: Event, audio: Any = None) -> EventResult: ...


class DirectiveQueue(Protocol):
    async def new_dialog(self, dialog_request_id: str) -> None: ...

    def set_dialog_request_id(self, dialog_request_id: str) -> None: ...

    async def idle(self) -> None: ...


class SpeechControl(Protocol):
    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Expectation:
    """The data of the EXPECTING state (:attr:`DialogMachine.data`): ExpectSpeech's initiator, echoed verbatim,
    and the voice detector that notices the answer starting."""

    initiator: Mapping[str, Any] | None
    vad: VadEndpointer


@dataclass(slots=True)
class _Dialog:
    dialog_request_id: str
    initiator: Initiator
    capture: Capture
    endpointer: VadEndpointer | None  # None: capture until release (PRESS_AND_HOLD) or StopCapture (cloud TAP)
    task: asyncio.Task[None] | None = None
    upload_start_index: int = 0


class DialogController:
    """Owns the dialog state machine and drives it from audio, buttons, directives, connection and timers."""

    def __init__(
        self,
        *,
        pipeline: VoicePipeline,
        client: RecognizeSender,
        sequencer: DirectiveQueue,
        send_event: Callable[[Event], None],
        speech: SpeechControl,
        connected: Callable[[], bool],
    ) -> None:
        self._pipeline = pipeline
        self._client = client
        self._sequencer = sequencer
        self._send_event = send_event
        self.speech = speech
        self.machine = DialogMachine(pipeline.settings.timeouts, connected=connected)
        self.machine.add_observer(self._on_transition, name="DialogController")
        self.ring = RingBuffer(ring_seconds(pipeline.settings))
        self._dialog: _Dialog | None = None
        self._dialogs = TaskSet(_LOGGER)
        self._timer: asyncio.TimerHandle | None = None
        self._state_waiters: list[asyncio.Future[None]] = []
        self.last_frame_time: float | None = None
        self._source: AudioSource | None = None
        self.wake_detections: list[Detection] = []
        self.dialog_started: list[tuple[float, str, int]] = []  # (loop time, dialogRequestId, upload start index)

    @property
    def state(self) -> DialogState:
        return self.machine.state

    @property
    def pipeline(self) -> VoicePipeline:
        return self._pipeline

    @property
    def settings(self) -> DialogSettings:
        return self._pipeline.settings

    @property
    def endpointing(self) -> EndpointerSettings:
        return self._pipeline.endpointing

    @property
    def engine(self) -> WakeEngine:
        return self._pipeline.engine

    @property
    def keyword(self) -> str:
        return self._pipeline.keyword.upper()

    def use_pipeline(self, pipeline: VoicePipeline) -> None:
        """Replace the audio path between two blocks (a reload): the next dialog uses the new settings, the ring
        is resized to the new pre-roll (keeping its history and indices), the state timeouts follow."""
        old, self._pipeline = self._pipeline, pipeline
        if ring_seconds(pipeline.settings) != ring_seconds(old.settings):
            self.ring = self.ring.resized(ring_seconds(pipeline.settings))
        self.machine.timeouts = pipeline.settings.timeouts
        if pipeline.engine is not old.engine:
            pipeline.engine.set_sensitivity_boost(self.machine.state is S.SPEAKING)
            old.engine.close()

    @property
    def _expectation(self) -> _Expectation | None:
        data = self.machine.data
        return data if self.machine.state is S.EXPECTING and isinstance(data, _Expectation) else None

    async def _until(self, predicate: Callable[[DialogState], bool]) -> None:
        """Wait for a state that satisfies ``predicate`` (woken by transitions, no polling)."""
        while not predicate(self.machine.state):
            waiter = self._loop.create_future()
            self._state_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._state_waiters:
                    self._state_waiters.remove(waiter)

    @property
    def has_dialog(self) -> bool:
        """A dialog is open or its answer is still being handled."""
        return self._dialog is not None or any(not task.done() for task in self._dialogs)

    async def wait_until_over(self) -> None:
        """Until the dialog is over: a resting state and no dialog task left (woken by transitions and by the
        tasks ending, no polling)."""
        resting = (S.IDLE, S.OFFLINE, S.MUTED)
        while True:
            await self._until(lambda state: state in resting)
            pending = [task for task in self._dialogs if not task.done()]
            if not pending:
                return
            await asyncio.wait(pending)

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    # ----- audio --------------------------------------------------------------------------------------------

    async def run_audio(self, open_source: Callable[[], AudioSource], *, retry_s: float = 5.0) -> None:
        """Read the microphone (or a file) for as long as the daemon runs; closed while muted.

        Returns when a finite source (a WAV file) ends. A device that is missing or fails is retried with a
        back-off, logging one line per failure.
        """
        backoff = Backoff.exponential(1.0, retry_s * 6)
        while True:
            await self._until(lambda state: state is not S.MUTED)
            try:
                source = open_source()
            except AudioDeviceError as exc:
                delay = backoff.next_delay()
                _LOGGER.error("%s; retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            ended = True
            self._source = source
            self._set_block_size()
            try:
                async for frame in source.frames():
                    self.on_frame(frame)
                    if self.machine.muted:
                        ended = False
                        break
            except AudioDeviceError as exc:
                ended = False
                _LOGGER.error("%s; reopening in %.0f s", exc, retry_s)
                await asyncio.sleep(retry_s)
            finally:
                self._source = None
                await source.close()
            if ended:
                return

    def on_frame(self, block: bytes) -> None:
        """A block of whole 10 ms frames from the microphone. The hot path: keep it cheap.

        The wake-word engine takes the block at once; the capture and the endpointer work frame by frame, so the
        upload goes out as 320-byte frames and end of speech is found to the frame.
        """
        self.last_frame_time = self._loop.time()
        self.ring.append(block)
        state = self.machine.state
        if state in (S.IDLE, S.THINKING, S.SPEAKING, S.OFFLINE):
            detection = self.engine.process(block, self.ring.end_index)
            if detection is not None:
                self.wake_detections.append(detection)
                self._on_wake_word(detection)
            return
        for offset in range(0, len(block), FRAME_BYTES):
            frame = block[offset : offset + FRAME_BYTES]
            state = self.machine.state
            dialog = self._dialog
            if state is S.LISTENING and dialog is not None:
                dialog.capture.push(frame)
                if dialog.endpointer is not None:
                    result = dialog.endpointer.process_frame(frame)
                    if result is not EndpointResult.CONTINUE:
                        self._end_capture(dialog, result)
            elif state is S.EXPECTING and (expectation := self._expectation) is not None:
                expectation.vad.process_frame(frame)
                if expectation.vad.speech_detected:
                    # Frames after this one in the block are in the ring, which the new capture starts from.
                    self._answer_expect_speech(self.ring.end_index - (len(block) - offset - FRAME_BYTES) // 2)
                    return
            else:
                return

    # ----- triggers from the outside ------------------------------------------------------------------------

    def _on_wake_word(self, detection: Detection) -> None:
        _LOGGER.info("wake word %r (%s, score %.2f)", detection.keyword, detection.engine, detection.score)
        if not self.machine.online:
            _LOGGER.warning("wake word heard, but AVS is not connected")
            return
        preroll = int(self.settings.preroll_s * SAMPLE_RATE)
        start = detection.start_index - preroll
        indices: tuple[int, int] | None = None
        if start >= self.ring.start_index:
            indices = (preroll, detection.end_index - start)
        else:  # not enough history: send what there is, without indices (as the SDK does)
            start = self.ring.start_index
        self._begin(Initiator.WAKEWORD, T.WAKE_WORD, start, wake_word_indices=indices)

    def tap(self) -> None:
        """Start a TAP dialog (barging in on speech; the button mapping decides whether a tap stops instead)."""
        self._begin(Initiator.TAP, T.BUTTON_TAP, self.ring.end_index)

    def hold_start(self) -> None:
        self._begin(Initiator.PRESS_AND_HOLD, T.BUTTON_HOLD, self.ring.end_index)

    def hold_end(self) -> None:
        dialog = self._dialog
        if dialog is not None and dialog.initiator is Initiator.PRESS_AND_HOLD and self.state is S.LISTENING:
            self._close_capture(dialog, T.CAPTURE_DONE, "button released")

    def stop(self) -> None:
        """The user's stop: end speech (and any capture) now."""
        if self.machine.state in (S.SPEAKING, S.LISTENING, S.THINKING, S.EXPECTING):
            self._abandon_dialog()
            self._fire(T.STOP)

    def toggle_mute(self) -> None:
        """Privacy mute: the microphone stream is closed, not just ignored."""
        muting = not self.machine.muted
        if muting:
            self._abandon_dialog()
        self._fire(T.MUTE_TOGGLE)

    def connection_changed(self, connected: bool) -> None:
        """Observer of the connection's owner (the AVS client); the fact itself is read from there. Every state of
        the client but CONNECTED counts as disconnected, so a retry while OFFLINE is not news."""
        if not connected and self.machine.state is S.OFFLINE:
            return
        if not connected:
            self._abandon_dialog()
        self._fire(T.CONNECTED if connected else T.DISCONNECTED)

    # ----- SpeechRecognizer directives ----------------------------------------------------------------------

    def stop_capture(self) -> None:
        dialog = self._dialog
        if dialog is not None and self.state is S.LISTENING:
            self._close_capture(dialog, T.CAPTURE_DONE, "StopCapture from AVS")
        else:
            _LOGGER.debug("StopCapture while not capturing; ignored")

    def expect_speech(self, timeout_s: float, initiator: Mapping[str, Any] | None) -> bool:
        """Open the mic for an answer. False when the state does not allow it (the agent reports that)."""
        if self.state not in (S.IDLE, S.THINKING, S.SPEAKING):
            return False
        expectation = _Expectation(initiator, VadEndpointer(self.endpointing))
        return self._fire(T.EXPECT_SPEECH, timeout_s=timeout_s, data=expectation) is not None

    def recognizer_context(self) -> dict[str, Any]:
        return context_entry("SpeechRecognizer", "RecognizerState", {"wakeword": self.keyword})

    # ----- SpeechSynthesizer observer -----------------------------------------------------------------------

    def on_speech(self, playing: bool) -> None:
        self._fire(T.SPEECH_STARTED if playing else T.SPEECH_FINISHED)

    # ----- dialogs ------------------------------------------------------------------------------------------

    def _begin(self, initiator: Initiator, trigger: Trigger, start_index: int, **kwargs: Any) -> None:
        if self.machine.state is S.LISTENING or self.machine.muted:
            return
        if not self.machine.online:
            _LOGGER.warning("cannot start a dialog: AVS is not connected")
            return
        previous = self._dialog
        expectation = self._expectation
        self._abandon_dialog()
        if initiator is Initiator.PRESS_AND_HOLD or (
            initiator is Initiator.TAP and self.settings.tap_endpointing == "cloud"
        ):
            endpointer = None
        else:
            endpointer = VadEndpointer(self.endpointing)
        dialog = _Dialog(
            dialog_request_id=str(uuid.uuid4()),
            initiator=initiator,
            capture=Capture(self.ring.read_from(start_index)),
            endpointer=endpointer,
            upload_start_index=max(start_index, self.ring.start_index),
        )
        self._dialog = dialog
        self.dialog_started.append((self._loop.time(), dialog.dialog_request_id, dialog.upload_start_index))
        self._fire(trigger)
        event = recognize_event(
            dialog_request_id=dialog.dialog_request_id,
            initiator=initiator,
            profile="CLOSE_TALK" if initiator is Initiator.PRESS_AND_HOLD else self.settings.wake_profile,
            wake_word_indices=kwargs.get("wake_word_indices"),
            expect_initiator=expectation.initiator if expectation is not None else None,
            audio_format=self.settings.audio_format,
        )
        old_task = previous.task if previous is not None else None
        dialog.task = self._dialogs.spawn(self._run_dialog(dialog, event, old_task), "dialog")

    def _answer_expect_speech(self, heard_index: int) -> None:
        back = int((self.endpointing.speech_start_s + self.settings.expect_preroll_s) * SAMPLE_RATE)
        self._begin(Initiator.EXPECT_SPEECH, T.SPEECH_HEARD, heard_index - back)

    async def _run_dialog(self, dialog: _Dialog, event: Event, old_task: asyncio.Task[None] | None) -> None:
        """One dialog from upload to answer. Any failure (not only an AvsError: a bug, an encoder error, a
        third-party exception that escaped its boundary) ends it at once with FAILED, logged, so the device
        returns to IDLE instead of sitting in THINKING until the state's timeout."""
        try:
            await self._dialog_steps(dialog, event, old_task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, AvsError):
                _LOGGER.warning("Recognize failed: %s", exc)
            else:
                _LOGGER.exception("dialog %s failed", dialog.dialog_request_id)
            dialog.capture.close()
            if self._dialog is dialog:
                self._dialog = None
                self._fire(T.FAILED)

    async def _dialog_steps(self, dialog: _Dialog, event: Event, old_task: asyncio.Task[None] | None) -> None:
        # A new dialog cancels the old one and waits for it to finish cancelling.
        await self.speech.stop()
        if old_task is not None and not old_task.done():
            old_task.cancel()
            await asyncio.gather(old_task, return_exceptions=True)
        await self._sequencer.new_dialog(dialog.dialog_request_id)
        settings = self.settings
        try:
            audio = dialog.capture.frames()
            if settings.audio_format == OPUS_FORMAT:
                audio = encode_frames(audio, OpusEncoder(settings.opus_bitrate))
            await self._client.send_event(event, audio=audio)
        finally:
            dialog.capture.close()
        if self._dialog is not dialog:
            return
        # Let this dialog's directives (Speak, ExpectSpeech ...) run; if nothing moved the state on, we are done.
        await self._sequencer.idle()
        if self._dialog is dialog:
            self._dialog = None
            self._fire(T.DIALOG_DONE)

    def _end_capture(self, dialog: _Dialog, result: EndpointResult) -> None:
        if result is EndpointResult.NO_SPEECH_TIMEOUT:
            _LOGGER.info("nobody spoke; giving up")
            self._abandon_dialog()
            self._fire(T.NO_SPEECH)
        else:
            self._close_capture(dialog, T.CAPTURE_DONE, str(result))

    def _close_capture(self, dialog: _Dialog, trigger: Trigger, why: str) -> None:
        _LOGGER.info("capture ends: %s", why)
        dialog.capture.close()
        self._fire(trigger)

    def _abandon_dialog(self) -> None:
        """Forget the current dialog: close its capture, stop its speech, drop its late directives."""
        dialog, self._dialog = self._dialog, None
        if dialog is not None:
            dialog.capture.close()
            # Directives still on their way for it must be dropped: make a fresh id current.
            self._sequencer.set_dialog_request_id(str(uuid.uuid4()))
        if self.machine.state is S.SPEAKING:
            self._loop.create_task(self.speech.stop(), name="stop-speech")

    # ----- state machine plumbing ---------------------------------------------------------------------------

    def _fire(self, trigger: Trigger, *, timeout_s: float | None = None, data: Any = None) -> Transition | None:
        return self.machine.fire(trigger, self._loop.time(), timeout_s=timeout_s, data=data)

    def _set_block_size(self) -> None:
        """Small blocks while listening (end of speech acted on at once), large ones otherwise (fewer wake-ups)."""
        if self._source is not None:
            low_latency = self.machine.state in (S.LISTENING, S.EXPECTING)
            self._source.block_frames = ACTIVE_BLOCK_FRAMES if low_latency else IDLE_BLOCK_FRAMES

    def _on_transition(self, transition: Transition) -> None:
        _LOGGER.info("state %s -> %s (%s)", transition.previous, transition.state, transition.trigger)
        self._set_block_size()
        if (transition.previous is S.SPEAKING) != (transition.state is S.SPEAKING):
            self.engine.set_sensitivity_boost(transition.state is S.SPEAKING)
        if transition.previous is S.LISTENING and transition.state is not S.LISTENING:
            self.engine.reset()  # the engine missed the frames of the capture; start it clean
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.machine.deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_deadline)
        waiters, self._state_waiters = self._state_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _on_deadline(self) -> None:
        self._timer = None
        previous = self.machine.state
        if self.machine.deadline is None or self._loop.time() < self.machine.deadline:
            return
        if previous in (S.LISTENING, S.THINKING, S.SPEAKING):
            _LOGGER.warning("%s took too long; giving up on the dialog", previous)
            self._abandon_dialog()
        self.machine.check_timeout(self._loop.time())
        if previous is S.EXPECTING:
            self._send_event(Event.new("SpeechRecognizer", "ExpectSpeechTimedOut"))

    async def close(self) -> None:
        self._abandon_dialog()
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._dialogs):
            task.cancel()
        if self._dialogs:
            await asyncio.gather(*self._dialogs, return_exceptions=True)


# DialogSettings, Initiator, recognize_event and VoicePipeline live in avsd.recognize; re-exported for importers.
__all__ = [
    "DialogController",
    "DialogSettings",
    "Initiator",
    "VoicePipeline",
    "recognize_event",
]
