"""One call with a scripted back-end and a recording line: failures, one question at a time, pacing, marks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from avsd.errors import AvsdError
from avsd.phone.call import Call, frame_ticker
from avsd.phone.convert import resample
from avsd.phone.core import CallState, SegmenterSettings
from avsd.reply import Reply, ReplyDirective

REPLY_MP3 = Path(__file__).resolve().parents[2] / "avsd" / "emulator" / "assets" / "reply.mp3"

pytestmark = pytest.mark.timeout(30)


def _speak(mp3: bytes) -> Reply:
    return Reply("d1", 200, (ReplyDirective("SpeechSynthesizer", "Speak", {}, "d1", "m1", mp3),))


NOTHING = Reply("d1", 204, ())


class FakeSession:
    """Answers from a script: an exception to raise or a Reply to return, one per ask."""

    def __init__(self, script: list[Reply | Exception]) -> None:
        self.script = script
        self.asked: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.listened = 0

    def listening(self) -> None:
        self.listened += 1

    def answering(self) -> None:
        return None

    async def ask(self, pcm16k: bytes) -> Reply:
        self.asked.append(len(pcm16k))
        await self.gate.wait()
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    async def aclose(self) -> None:
        return None


class RecordingLine:
    rate = 8000

    def __init__(self, echo_marks: bool) -> None:
        self.frames: list[bytes] = []
        self.marks: list[str] = []
        self.cleared = 0
        self.echo_marks = echo_marks
        self.call: Call | None = None

    def encode(self, pcm_frames: list[bytes]) -> list[str | bytes]:
        return list(pcm_frames)

    async def send(self, messages: list[str | bytes]) -> None:
        self.frames += [m for m in messages if isinstance(m, bytes)]

    async def send_mark(self, name: str) -> bool:
        self.marks.append(name)
        if self.echo_marks and self.call is not None:
            asyncio.get_running_loop().call_soon(self.call.mark, "some-late-unknown-mark")
            asyncio.get_running_loop().call_soon(self.call.mark, name)
        return self.echo_marks

    async def clear(self) -> None:
        self.cleared += 1

    async def close(self) -> None:
        return None


def _call(session: FakeSession, line: RecordingLine) -> Call:
    call = Call(caller="+1555", call_id="c1", transport=line, session=session, segmenter=SegmenterSettings(),
                utterance_hooks=[], dtmf_hooks=[])
    line.call = call
    return call


def _say(call: Call, speech16k: bytes) -> None:
    line = resample(speech16k, 16000, 8000)
    for offset in range(0, len(line), 320):
        call.feed(line[offset : offset + 320])


async def _until(call: Call, state: CallState) -> None:
    async with asyncio.timeout(15):
        while call.state is not state:
            await asyncio.sleep(0.01)


async def test_backend_failure_goes_back_to_listening_then_a_reply_plays(speech: bytes) -> None:
    session = FakeSession([AvsdError("back-end down"), _speak(REPLY_MP3.read_bytes())])
    line = RecordingLine(echo_marks=True)
    call = _call(session, line)
    _say(call, speech)
    await _until(call, CallState.LISTENING)
    assert len(session.asked) == 1 and line.frames == []
    _say(call, speech)
    await _until(call, CallState.SPEAKING)
    await _until(call, CallState.LISTENING)  # played: the mark came back (the unknown one was ignored)
    assert line.marks == ["reply-1"]  # the failed turn played nothing
    assert len(line.frames) > 50 and all(len(f) == 320 for f in line.frames)  # 20 ms at 8 kHz, 16-bit
    sent = call.stats.reply_send_times[0]
    assert sent[-1] - sent[0] > 0.8 * (len(line.frames) - 5) * 0.02  # paced, not sent in one burst
    await call.close()


async def test_one_question_at_a_time(speech: bytes) -> None:
    session = FakeSession([NOTHING, NOTHING])
    session.gate.clear()  # the back-end thinks until released
    call = _call(session, RecordingLine(echo_marks=False))
    _say(call, speech)
    await _until(call, CallState.THINKING)
    async with asyncio.timeout(5):
        while not session.asked:
            await asyncio.sleep(0.01)
    _say(call, speech)  # the caller speaks again while the first question is out: dropped right there
    session.gate.set()
    await _until(call, CallState.LISTENING)  # an empty answer: nothing to play
    assert len(session.asked) == 1
    await call.close()
    assert call.state is CallState.ENDED


async def test_hash_stops_a_reply_without_marks(speech: bytes) -> None:
    session = FakeSession([_speak(REPLY_MP3.read_bytes())])
    line = RecordingLine(echo_marks=False)
    digits: list[tuple[str, str]] = []
    call = _call(session, line)
    call._dtmf_hooks.append(lambda caller, digit: digits.append((caller, digit)))
    _say(call, speech)
    await _until(call, CallState.SPEAKING)
    call.dtmf("#")
    assert call.state is CallState.LISTENING
    assert digits == [("+1555", "#")]
    await asyncio.sleep(0)  # let the clear task run
    assert line.cleared == 1
    await call.close()


async def test_the_frame_ticker_wakes_pacers_in_a_stable_order_on_the_grid() -> None:
    ticker = frame_ticker()
    assert frame_ticker() is ticker  # one per loop, shared by every call
    loop = asyncio.get_running_loop()
    woken: list[tuple[int, str, float]] = []
    first = ticker.now() + 1

    async def pacer(name: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)  # started at different times, in the order c, a, b
        for tick in range(first, first + 25):
            await ticker.until(tick)
            woken.append((tick, name, loop.time()))

    await asyncio.gather(pacer("a", 0.002), pacer("b", 0.004), pacer("c", 0.0))
    for tick in range(first, first + 25):
        at_tick = [(name, at) for t, name, at in woken if t == tick]
        assert [name for name, _ in at_tick] == ["c", "a", "b"], tick  # the order they first asked in, every tick
        assert all(at >= tick * 0.020 for _, at in at_tick)  # never before the tick is due
    await ticker.until(first)  # a tick in the past: no wait
