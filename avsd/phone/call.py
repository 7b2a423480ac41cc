"""One telephone call: caller audio in, VAD utterances to the back-end, replies paced out at real time.

The websocket handler (Twilio or Vonage) owns the socket and hands :meth:`Call.feed` the caller's audio already
decoded to 16-bit PCM at the line rate; the call sends audio back through a :class:`LineTransport` that encodes it
for its provider. The call's states are the table in :mod:`avsd.phone.core`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from avsd.audio.frames import FRAME_SECONDS
from avsd.audio.vad import NoiseGate, WebRtcVad
from avsd.errors import AvsdError
from avsd.phone.convert import decode_speech, frames, resample
from avsd.phone.core import CallState, CallTrigger, Segmenter, SegmenterSettings, SegmentEvent, next_state
from avsd.reply import Reply

_LOGGER = logging.getLogger(__name__)

LINE_FRAME_S = 0.020  # both providers carry 20 ms frames


class LineTransport(Protocol):
    """The provider side of a call. Audio is 20 ms frames of 16-bit PCM at ``rate``: ``encode`` turns frames into
    one wire message (ahead of time, so a pacing tick only sends), ``send`` sends messages in order."""

    rate: int

    def encode(self, pcm_frames: list[bytes]) -> list[str | bytes]: ...

    async def send(self, messages: list[str | bytes]) -> None: ...

    async def send_mark(self, name: str) -> bool: ...  # False: the provider has no marks

    async def clear(self) -> None: ...

    async def close(self) -> None: ...


class CallSession(Protocol):
    """The caller's dialog with Alexa (:class:`avsd.phone.backend.CallSession` over a headless session)."""

    async def ask(self, pcm16k: bytes) -> Reply: ...

    def listening(self) -> None: ...  # the reply is over: an ExpectSpeech's timeout starts

    def answering(self) -> None: ...  # the caller speaks: an ExpectSpeech's timeout stops

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Utterance:
    caller: str
    call_id: str
    pcm: bytes  # 16 kHz mono S16_LE
    capped: bool


@dataclass(slots=True)
class TurnTiming:
    """Monotonic times of one turn; ``speech_end`` is the last voiced frame's end (endpointing starts there)."""

    speech_end: float = 0.0
    endpointed: float = 0.0
    answered: float = 0.0
    decoded: float = 0.0
    first_frame: float = 0.0


@dataclass(slots=True)
class CallStats:
    turns: list[TurnTiming] = field(default_factory=list)
    reply_send_times: list[list[float]] = field(default_factory=list)  # per reply: each frame's send time
    underruns: int = 0  # frames sent later than their deadline + one frame
    directives: list[tuple[str, ...]] = field(default_factory=list)  # each answer's directive names


UtteranceHook = Callable[[Utterance], Awaitable[None] | None]
DtmfHook = Callable[[str, str], None]


def _decode_all(speech: list[bytes], rate: int) -> bytes:
    return b"".join([decode_speech(mp3, rate) for mp3 in speech])


class FrameTicker:
    """The 20 ms grid every reply on one event loop is paced on (:func:`frame_ticker`).

    One timer per tick for all calls, not one per call, and the pacers waiting for a tick are woken in the order
    they asked, so each call's frame leaves at the same point of every tick: with one timer per call, the loop
    runs timers that fall due at the same instant in heap order, which changes from tick to tick and moved a call's
    frame back and forth inside the tick's burst of sends (up to the burst's length, ~65 us per send per call).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: dict[int, list[asyncio.Future[None]]] = {}

    def now(self) -> int:
        """The tick that falls due next (tick n is due at loop time n * 20 ms)."""
        return math.ceil(self._loop.time() / LINE_FRAME_S)

    def late_s(self, tick: int) -> float:
        return self._loop.time() - tick * LINE_FRAME_S

    async def until(self, tick: int) -> None:
        """Wait for ``tick`` (at once when it is past)."""
        if self.late_s(tick) >= 0:
            return
        waiters = self._waiting.get(tick)
        if waiters is None:
            waiters = self._waiting[tick] = []
            self._loop.call_at(tick * LINE_FRAME_S, self._fire, tick)
        waiter: asyncio.Future[None] = self._loop.create_future()
        waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():  # cancelled (barge-in, hang-up): the tick goes on for the others
                waiter.cancel()

    def _fire(self, tick: int) -> None:
        for waiter in self._waiting.pop(tick, ()):
            if not waiter.done():
                waiter.set_result(None)


_TICKERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FrameTicker] = weakref.WeakKeyDictionary()


def frame_ticker() -> FrameTicker:
    """The running loop's :class:`FrameTicker` (one per loop, shared by every call on it)."""
    loop = asyncio.get_running_loop()
    ticker = _TICKERS.get(loop)
    if ticker is None:
        ticker = _TICKERS[loop] = FrameTicker(loop)
    return ticker


class Call:
    def __init__(
        self,
        *,
        caller: str,
        call_id: str,
        transport: LineTransport,
        session: CallSession | None,
        segmenter: SegmenterSettings,
        utterance_hooks: list[UtteranceHook],
        dtmf_hooks: list[DtmfHook],
        lead_frames: int = 5,
        mark_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.caller, self.call_id = caller, call_id
        self.transport = transport
        self.session = session
        self.state = CallState.LISTENING
        self.stats = CallStats()
        self._segmenter = Segmenter(segmenter)
        # VAD runs on the line audio as it is (webrtcvad takes 8 kHz): the resampler works in blocks and would
        # hold up to ~115 ms of a streamed 8 kHz line back, which would all add to the reply's latency. Only a
        # finished utterance is brought to 16 kHz, at once.
        self._vad = WebRtcVad(segmenter.aggressiveness, transport.rate)
        self._frame_bytes = self._vad.frame_bytes
        self._gate = NoiseGate()
        self._tail = b""
        self._preroll: collections.deque[bytes] = collections.deque(
            maxlen=max(1, round(segmenter.preroll_s / FRAME_SECONDS))
        )
        self._utterance: list[bytes] = []
        self._utterance_hooks, self._dtmf_hooks = utterance_hooks, dtmf_hooks
        self._lead_frames, self._mark_timeout_s = lead_frames, mark_timeout_s
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._pacer: asyncio.Task[None] | None = None
        self._mark_waiters: dict[str, asyncio.Future[None]] = {}
        self._replies = 0

    # ----- state ---------------------------------------------------------------------------------------------

    def _fire(self, trigger: CallTrigger) -> bool:
        state = next_state(self.state, trigger)
        if state is None:
            _LOGGER.debug("call %s: %s ignored in %s", self.call_id, trigger, self.state)
            return False
        if state is not self.state:
            _LOGGER.info("call %s: %s -> %s (%s)", self.call_id, self.state, state, trigger)
        self.state = state
        if state is CallState.LISTENING and trigger is not CallTrigger.BARGE_IN and self.session is not None:
            self.session.listening()  # a barge-in is the caller's answer already under way
        return True

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(f"call-{self.call_id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("call %s: task %s failed: %r", self.call_id, task.get_name(), task.exception())

    # ----- caller audio --------------------------------------------------------------------------------------

    def feed(self, line_pcm: bytes) -> None:
        """Caller audio (16-bit PCM at the line rate, any length), segmented in 10 ms frames."""
        if self.state is CallState.ENDED:
            return
        data = self._tail + line_pcm if self._tail else line_pcm
        whole = len(data) - len(data) % self._frame_bytes
        self._tail = data[whole:]
        for offset in range(0, whole, self._frame_bytes):
            self._frame(data[offset : offset + self._frame_bytes])

    def _frame(self, frame: bytes) -> None:
        loud = self._gate.above_floor(frame)
        event = self._segmenter.process(FRAME_SECONDS, loud and self._vad.is_speech(frame))
        if self._segmenter.active or event is not SegmentEvent.NONE:
            if event is SegmentEvent.STARTED or (event is SegmentEvent.CONFIRMED and not self._utterance):
                self._utterance = [*self._preroll]
            self._utterance.append(frame)
        else:
            self._preroll.append(frame)
        if event is SegmentEvent.CONFIRMED and self.session is not None:
            self.session.answering()
        if event is SegmentEvent.CONFIRMED and self.state is CallState.SPEAKING:
            _LOGGER.info("call %s: barge-in", self.call_id)
            self._stop_reply()
            self._fire(CallTrigger.BARGE_IN)
        elif event in (SegmentEvent.ENDED, SegmentEvent.CAPPED):
            now = self._clock()
            timing = TurnTiming(speech_end=now - self._segmenter.trailing_silence_s, endpointed=now)
            pcm16k = resample(b"".join(self._utterance), self.transport.rate, 16000)
            self._utterance_done(pcm16k, event is SegmentEvent.CAPPED, timing)
            self._utterance = []
            self._preroll.clear()
        elif event is SegmentEvent.DROPPED:
            self._utterance = []

    def _utterance_done(self, pcm: bytes, capped: bool, timing: TurnTiming) -> None:
        utterance = Utterance(self.caller, self.call_id, pcm, capped)
        for hook in self._utterance_hooks:
            try:
                result = hook(utterance)
            except Exception:  # an observer's failure stays with the observer
                _LOGGER.exception("call %s: utterance hook failed", self.call_id)
                continue
            if result is not None:
                self._spawn(result, "hook")
        if self.session is None:
            return
        if not self._fire(CallTrigger.UTTERANCE):
            _LOGGER.info("call %s: utterance while %s, not sent", self.call_id, self.state)
            return
        self._spawn(self._ask(pcm, timing), "ask")

    async def _ask(self, pcm: bytes, timing: TurnTiming) -> None:
        assert self.session is not None
        reply: Reply | None = None
        try:
            reply = await self.session.ask(pcm)
        except AvsdError as exc:
            _LOGGER.warning("call %s: the back-end failed: %s", self.call_id, exc)
        except TimeoutError:
            _LOGGER.warning("call %s: the back-end did not answer in time", self.call_id)
        except Exception:  # this task is the turn's boundary: whatever broke, the call goes on listening
            _LOGGER.exception("call %s: the back-end broke", self.call_id)
        timing.answered = self._clock()
        directives = reply.directives if reply is not None else ()
        self.stats.directives.append(tuple(d.qualified_name for d in directives))
        if self.state is not CallState.THINKING:
            return
        try:
            # In a worker thread (miniaudio and soxr release the GIL): a 2 s MP3 takes 2-8 ms to decode and
            # resample on the shared VM, and inline that would hold up the frames every other call has due meanwhile.
            speech = [d.audio_attachment for d in directives if d.name == "Speak" and d.audio_attachment]
            pcm_out = await asyncio.to_thread(_decode_all, speech, self.transport.rate)
        except AvsdError as exc:
            _LOGGER.warning("call %s: %s", self.call_id, exc)
            pcm_out = b""
        timing.decoded = self._clock()
        _LOGGER.info("call %s: reply %s", self.call_id, reply.summary() if reply is not None else "(nothing)")
        if not pcm_out or self.state is not CallState.THINKING:
            self._fire(CallTrigger.NO_REPLY)
            return
        self._fire(CallTrigger.REPLY)
        self.stats.turns.append(timing)
        self._start_reply(pcm_out, timing)

    # ----- replies -------------------------------------------------------------------------------------------

    def _start_reply(self, pcm: bytes, timing: TurnTiming | None) -> None:
        self._stop_reply()
        frame_bytes = int(self.transport.rate * LINE_FRAME_S) * 2
        self._replies += 1
        self._pacer = self._spawn(self._pace(frames(pcm, frame_bytes), f"reply-{self._replies}", timing), "pacer")

    def _stop_reply(self) -> None:
        if self._pacer is not None and not self._pacer.done():
            self._pacer.cancel()
            self._spawn(self.transport.clear(), "clear")
        self._pacer = None
        for waiter in self._mark_waiters.values():
            if not waiter.done():
                waiter.cancel()
        self._mark_waiters.clear()

    async def _pace(self, pcm_frames: list[bytes], mark: str, timing: TurnTiming | None) -> None:
        sent: list[float] = []
        self.stats.reply_send_times.append(sent)
        loop = asyncio.get_running_loop()
        # Deadlines sit on the loop's one 20 ms grid (FrameTicker): absolute ticks, never relative sleeps, so a
        # late tick is caught up by the next one instead of shifting every later frame.
        ticker = frame_ticker()
        tick = ticker.now()
        lead = min(self._lead_frames, len(pcm_frames))
        if lead:
            await self.transport.send(self.transport.encode(pcm_frames[:lead]))
            sent.append(self._clock())
            if timing is not None:
                timing.first_frame = sent[-1]
        # Encoded while the lead plays, so each tick only writes ready messages.
        wire = [self.transport.encode([frame]) for frame in pcm_frames[lead:]]
        for index in range(lead, len(pcm_frames)):
            due = tick + index - lead + 1
            if ticker.late_s(due) > LINE_FRAME_S:
                self.stats.underruns += 1
            await ticker.until(due)
            await self.transport.send(wire[index - lead])
            sent.append(self._clock())
        # The caller hears the end one lead later; Twilio says when with the mark's echo.
        waiter: asyncio.Future[None] = loop.create_future()
        self._mark_waiters[mark] = waiter
        if await self.transport.send_mark(mark):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, self._mark_timeout_s)
        else:
            await asyncio.sleep(lead * LINE_FRAME_S)
        self._mark_waiters.pop(mark, None)
        if self._pacer is asyncio.current_task():
            self._pacer = None
        self._fire(CallTrigger.PLAYED)

    def mark(self, name: str) -> None:
        """A mark came back. Unknown or late ones (echoed by ``clear``) mean nothing and are ignored."""
        waiter = self._mark_waiters.get(name)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def dtmf(self, digit: str) -> None:
        _LOGGER.info("call %s: DTMF", self.call_id)  # the digit itself may be a PIN: not logged
        for hook in self._dtmf_hooks:
            try:
                hook(self.caller, digit)
            except Exception:
                _LOGGER.exception("call %s: DTMF hook failed", self.call_id)
        if digit == "#" and self.state is CallState.SPEAKING:
            self._stop_reply()
            self._fire(CallTrigger.STOP)

    # ----- host program --------------------------------------------------------------------------------------

    def play(self, pcm: bytes, rate: int = 16000) -> None:
        """Play 16-bit mono PCM at ``rate`` to the caller (replaces a reply that is going out)."""
        if self._fire(CallTrigger.PLAY):
            self._start_reply(resample(pcm, rate, self.transport.rate), None)

    async def hang_up(self) -> None:
        await self.close()
        await self.transport.close()

    async def close(self) -> None:
        """The call is over (stop, socket closed, hang-up): stop everything it started."""
        if self.state is CallState.ENDED:
            return
        self._fire(CallTrigger.HANG_UP)
        self._stop_reply()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.session is not None:
            with contextlib.suppress(AvsdError):
                await self.session.aclose()
