"""``avsd demo --say TEXT`` (repeatable): the user's utterances made with espeak-ng, spoken one at a time when the
dialog asks for them.

- The first utterance is spoken once the device is connected and idle. It opens a dialog, so it starts with the
  wake word ("Alexa, " is put in front unless the text already starts with it), or with ``--tap`` the demo taps
  the button and speaks once the device listens.
- Each further utterance waits for the device: if an ExpectSpeech opened the microphone (state EXPECTING) it is
  spoken as is, as the answer; if the dialog ended (back to IDLE) it opens a new dialog like the first one.
- The microphone hears silence in between, always at wall-clock pace (an endpointer's and ExpectSpeech's
  timeouts are about real time); the speech itself is paced too, unless ``--fast``.

:class:`SayCue` is the pure decision (transition in, action out); :class:`ScriptedSource` is the
:class:`~avsd.audio.source.AudioSource`; :class:`SayDriver` glues them to a daemon's dialog.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import miniaudio
import numpy as np

from avsd.audio.frames import FRAME_BYTES, IDLE_BLOCK_FRAMES, SAMPLE_RATE
from avsd.emulator import speech
from avsd.state import DialogState, Transition, Trigger

_log = logging.getLogger(__name__)

WAKE_WORD = "Alexa"
WAKE_GAP_S = 0.25  # silence between "Alexa" and the command, as in the shipped recordings
LEAD_S = 0.5  # silence before the first utterance
TRAIL_S = 3.0  # silence after the last one (the endpointer needs some; the reply is awaited by the daemon)
GIVE_UP_S = 30.0  # no cue for this long (the wake word was not heard, the device went offline): stop
PEAK = 0.7  # -3 dBFS


class Action(StrEnum):
    SPEAK = "speak"  # speak the next utterance now (the mic is open or the wake word opens it)
    TAP_AND_SPEAK = "tap_and_speak"  # tap the button, speak once the device listens
    WAIT_IDLE = "wait_idle"  # back to idle: ask again (idle_settled) after IDLE_SETTLE_S if still idle


IDLE_SETTLE_S = 0.5  # a Speak's end passes through IDLE right before an ExpectSpeech opens the mic again


@dataclass(frozen=True, slots=True)
class Cue:
    action: Action
    index: int  # which utterance
    wake_word: bool  # put the wake word in front (a dialog opened by voice)


class SayCue:
    """When the next utterance is due. Pure: transitions in, cues out."""

    def __init__(self, count: int, *, tap: bool) -> None:
        self.count = count
        self.tap = tap
        self.next = 0
        self._waiting_listen: int | None = None  # tapped; speak this one when the device listens

    @property
    def done(self) -> bool:
        return self.next >= self.count and self._waiting_listen is None

    def _opening(self) -> Cue | None:
        if self.next >= self.count:
            return None
        index, self.next = self.next, self.next + 1
        if self.tap:
            self._waiting_listen = index
            return Cue(Action.TAP_AND_SPEAK, index, wake_word=False)
        return Cue(Action.SPEAK, index, wake_word=True)

    def start(self) -> Cue | None:
        """The device is connected and idle: the first utterance."""
        return self._opening()

    def on_transition(self, previous: DialogState, state: DialogState, trigger: Trigger) -> Cue | None:
        if self._waiting_listen is not None:
            if state is DialogState.LISTENING and trigger is Trigger.BUTTON_TAP:
                index, self._waiting_listen = self._waiting_listen, None
                return Cue(Action.SPEAK, index, wake_word=False)
            return None
        if state is DialogState.EXPECTING and self.next < self.count:
            index, self.next = self.next, self.next + 1
            return Cue(Action.SPEAK, index, wake_word=False)
        if state is DialogState.IDLE and previous not in (DialogState.OFFLINE, DialogState.MUTED):
            return Cue(Action.WAIT_IDLE, self.next, wake_word=True) if self.next < self.count else None
        return None

    def idle_settled(self, state: DialogState) -> Cue | None:
        """IDLE_SETTLE_S after a WAIT_IDLE: a new dialog if the device is still idle."""
        if state is not DialogState.IDLE or self._waiting_listen is not None:
            return None
        return self._opening()


def split_wake_word(text: str) -> tuple[bool, str]:
    """(text starts with the wake word, the rest without it and its punctuation)."""
    match = re.match(rf"^\s*{WAKE_WORD}\b[\s,.!?;:]*", text, flags=re.IGNORECASE)
    if match is None:
        return False, text.strip()
    return True, text[match.end() :].strip()


def _espeak_16k(text: str) -> np.ndarray:
    """espeak-ng speech as float samples at 16 kHz, trimmed and peak-normalised. Made through the emulator's TTS
    (espeak-ng -> MP3, the public API the shared speech package keeps) and decoded by miniaudio."""
    mp3 = speech.synthesize_mp3(text)
    decoded = miniaudio.decode(mp3, output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1, sample_rate=SAMPLE_RATE)
    x = np.frombuffer(decoded.samples.tobytes(), dtype="<i2").astype(np.float64)
    loud = np.flatnonzero(np.abs(x) >= 164)
    if len(loud) == 0:
        return np.zeros(0)
    x = x[loud[0] : loud[-1] + 1]
    return x * (PEAK * 32767 / max(1.0, float(np.max(np.abs(x)))))


def utterance_pcm(text: str, *, wake_word: bool) -> bytes:
    """16 kHz S16_LE mono of ``text`` (blocking: runs espeak-ng). With ``wake_word`` it starts with "Alexa",
    synthesised on its own and followed by WAKE_GAP_S of silence, as the wake-word engine is used to hearing."""
    has_wake, rest = split_wake_word(text)
    parts: list[np.ndarray] = []
    if wake_word or has_wake:
        parts += [_espeak_16k(WAKE_WORD), np.zeros(int(WAKE_GAP_S * SAMPLE_RATE))]
    if rest:
        parts.append(_espeak_16k(rest))
    x = np.concatenate(parts) if parts else np.zeros(0)
    return bytes(np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes())


class ScriptedSource:
    """Silence, and the utterances handed to :meth:`speak` when they are handed; ends :data:`TRAIL_S` after the
    last one once :meth:`finish` was called."""

    def __init__(self, *, realtime: bool, on_start: Callable[[], None] | None = None) -> None:
        self.realtime = realtime
        self.block_frames = IDLE_BLOCK_FRAMES
        self._on_start = on_start
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._finished = False
        self._closed = False
        self.spoken: list[tuple[float, float]] = []  # (monotonic start, seconds) of each utterance

    def speak(self, pcm: bytes) -> None:
        self._queue.append(pcm + bytes(-len(pcm) % FRAME_BYTES))

    def finish(self) -> None:
        self._finished = True

    async def frames(self) -> AsyncIterator[bytes]:
        next_due = time.monotonic()
        silence_after_last = 0.0
        lead = LEAD_S
        started = False
        while not self._closed:
            block_bytes = self.block_frames * FRAME_BYTES
            if lead <= 0 and not started:
                started = True
                if self._on_start is not None:
                    self._on_start()
            if self._queue and started:
                pcm = self._queue.popleft()
                self.spoken.append((time.monotonic(), len(pcm) / 2 / SAMPLE_RATE))
                for offset in range(0, len(pcm), block_bytes):
                    block = pcm[offset : offset + block_bytes]
                    if self.realtime:
                        next_due = await _pace(next_due, len(block))
                    else:
                        next_due = time.monotonic()
                        await asyncio.sleep(0)
                    yield block
                silence_after_last = 0.0
                continue
            if self._finished and not self._queue and silence_after_last >= TRAIL_S:
                return
            if silence_after_last >= GIVE_UP_S:
                _log.warning("the device did not ask for the next utterance within %.0f s; stopping", GIVE_UP_S)
                return
            next_due = await _pace(next_due, block_bytes)
            lead -= block_bytes / 2 / SAMPLE_RATE
            silence_after_last += block_bytes / 2 / SAMPLE_RATE
            yield bytes(block_bytes)

    async def close(self) -> None:
        self._closed = True


async def _pace(next_due: float, nbytes: int) -> float:
    """Sleep until a block of ``nbytes`` has been "heard" (paced against a running deadline, no drift)."""
    next_due = max(next_due, time.monotonic() - 0.5) + nbytes / 2 / SAMPLE_RATE
    delay = next_due - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    return next_due


class SayDriver:
    """Feeds ``texts`` into a :class:`ScriptedSource` as :class:`SayCue` decides. ``tap`` is the button."""

    def __init__(
        self,
        texts: Sequence[str],
        *,
        tap: bool,
        realtime: bool,
        press_tap: Callable[[], None],
        dialog_state: Callable[[], DialogState],
    ) -> None:
        self.texts = list(texts)
        self.cue = SayCue(len(self.texts), tap=tap)
        self._press_tap = press_tap
        self._dialog_state = dialog_state
        self._tasks: set[asyncio.Task[None]] = set()
        self.source = ScriptedSource(realtime=realtime, on_start=self._on_start)
        self.said: list[str] = []  # what was spoken, in order (with the wake word where it was put in front)

    def open_audio(self) -> ScriptedSource:
        return self.source

    async def prepare(self) -> None:
        """Synthesise every utterance before the device starts (espeak-ng's cache keeps the parts), so an answer
        goes out the moment the dialog asks for it, however loaded the machine is."""
        for index, text in enumerate(self.texts):
            for wake_word in (True, False) if index else (not self.cue.tap,):
                await asyncio.to_thread(utterance_pcm, text, wake_word=wake_word)

    def _on_start(self) -> None:
        self._run(self.cue.start())

    def on_transition(self, transition: Transition) -> None:
        self._run(self.cue.on_transition(transition.previous, transition.state, transition.trigger))

    def _run(self, cue: Cue | None) -> None:
        if cue is None:
            return
        if cue.action is Action.TAP_AND_SPEAK:
            self._press_tap()
            return
        if cue.action is Action.WAIT_IDLE:
            loop = asyncio.get_running_loop()
            loop.call_later(IDLE_SETTLE_S, lambda: self._run(self.cue.idle_settled(self._dialog_state())))
            return
        text = self.texts[cue.index]
        task = asyncio.get_running_loop().create_task(self._speak(text, cue), name=f"say-{cue.index}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _speak(self, text: str, cue: Cue) -> None:
        has_wake, rest = split_wake_word(text)
        spoken = f"{WAKE_WORD}, {rest}" if cue.wake_word or has_wake else rest
        try:
            pcm = await asyncio.to_thread(utterance_pcm, text, wake_word=cue.wake_word)
        except (OSError, ValueError) as exc:
            _log.error("cannot make speech for %r (install espeak-ng): %s", text, exc)
            self.source.finish()
            return
        self.said.append(spoken)
        print(f"avsd demo: saying {spoken!r}", flush=True)
        self.source.speak(pcm)
        if self.cue.done:
            self.source.finish()
