"""DirectiveSequencer with recording handlers (no mocks). Every test is bounded by asyncio.timeout."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Collection
from typing import Any

import pytest

from avsd.agents.sequencer import DirectiveSequencer, SequencerSettings
from avsd.avs.messages import Directive, Event, parse_directive
from avsd.errors import DirectiveParseError, NotConnectedError

LIMIT = 5.0


class Journal(list[str]):
    """The handlers' log; ``changed`` is set on every entry so tests wait on it instead of polling."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def append(self, entry: str) -> None:
        super().append(entry)
        self.changed.set()


class RecordingHandler:
    """Records start/end/cancel per directive. Payload flags steer it:
    ``hold`` waits until released (by the test or by cancel()), ``stubborn`` ignores cancel(),
    ``fail`` = "parse" | "boom" raises."""

    def __init__(self, journal: list[str], keys: Collection[tuple[str, str]], blocking: Collection[str] = ()):
        self.journal = journal
        self.keys = keys
        self.blocking_names = set(blocking)
        self.gates: dict[str, asyncio.Event] = {}
        self.hard_cancelled: list[str] = []

    def handles(self) -> Collection[tuple[str, str]]:
        return self.keys

    def blocking(self, directive: Directive) -> bool:
        return directive.name in self.blocking_names

    def gate(self, directive: Directive) -> asyncio.Event:
        return self.gates.setdefault(directive.message_id, asyncio.Event())

    async def handle(self, directive: Directive) -> None:
        tag = directive.message_id
        self.journal.append(f"start {tag}")
        try:
            if directive.payload.get("hold"):
                await self.gate(directive).wait()
        except asyncio.CancelledError:
            self.hard_cancelled.append(tag)
            raise
        fail = directive.payload.get("fail")
        if fail == "parse":
            raise DirectiveParseError("bad volume", directive.raw)
        if fail == "boom":
            raise RuntimeError("player exploded")
        self.journal.append(f"end {tag}")

    async def cancel(self, directive: Directive) -> None:
        self.journal.append(f"cancel {directive.message_id}")
        if not directive.payload.get("stubborn"):
            self.gate(directive).set()

    def release(self, message_id: str) -> None:
        self.gates.setdefault(message_id, asyncio.Event()).set()


class Rig:
    def __init__(self, settings: SequencerSettings | None = None) -> None:
        self.journal = Journal()
        self.reports: list[Event] = []
        self.fail_reports = False
        self.seq = DirectiveSequencer(self.on_exception, settings)
        self.speech = RecordingHandler(self.journal, [("SpeechSynthesizer", "Speak")], blocking=["Speak"])
        self.recognizer = RecordingHandler(
            self.journal, [("SpeechRecognizer", "ExpectSpeech"), ("SpeechRecognizer", "StopCapture")]
        )
        self.speaker = RecordingHandler(self.journal, [("Speaker", "SetVolume")])
        self.player = RecordingHandler(self.journal, [("AudioPlayer", "Play")])
        for h in (self.speech, self.recognizer, self.speaker, self.player):
            self.seq.register(h)

    async def on_exception(self, event: Event) -> None:
        if self.fail_reports:
            raise NotConnectedError("offline")
        self.reports.append(event)

    async def wait_for(self, entry: str) -> None:
        while entry not in self.journal:
            self.journal.changed.clear()
            await self.journal.changed.wait()


def d(qualified: str, tag: str, dialog: str | None = None, **payload: Any) -> Directive:
    namespace, name = qualified.split(".")
    return Directive.new(namespace, name, payload, dialog_request_id=dialog, message_id=tag)


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    settings = getattr(request, "param", None)
    r = Rig(settings)
    task = asyncio.create_task(r.seq.run())
    yield r
    async with asyncio.timeout(LIMIT):
        await r.seq.close()
        await task


async def test_blocking_speak_orders_the_dialog(rig: Rig) -> None:
    async with asyncio.timeout(LIMIT):
        await rig.seq.new_dialog("d1")
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s1", "d1", hold=True))
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s2", "d1"))
        rig.seq.submit(d("SpeechRecognizer.ExpectSpeech", "e1", "d1"))
        await rig.wait_for("start s1")
        await asyncio.sleep(0.02)
        assert rig.journal == ["start s1"]  # nothing overtakes the blocking Speak
        rig.speech.release("s1")
        await rig.seq.idle()
    assert rig.journal == ["start s1", "end s1", "start s2", "end s2", "start e1", "end e1"]


async def test_non_blocking_directive_does_not_hold_back_the_next(rig: Rig) -> None:
    async with asyncio.timeout(LIMIT):
        await rig.seq.new_dialog("d1")
        rig.seq.submit(d("AudioPlayer.Play", "p1", "d1", hold=True))
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s1", "d1"))
        await rig.wait_for("end s1")
        rig.player.release("p1")
        await rig.seq.idle()
    assert rig.journal.index("start p1") < rig.journal.index("start s1") < rig.journal.index("end p1")


async def test_directive_without_dialog_is_not_queued_behind_speak(rig: Rig) -> None:
    async with asyncio.timeout(LIMIT):
        await rig.seq.new_dialog("d1")
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s1", "d1", hold=True))
        rig.seq.submit(d("SpeechRecognizer.ExpectSpeech", "e1", "d1"))
        rig.seq.submit(d("Speaker.SetVolume", "v1", None))
        await rig.wait_for("end v1")
        assert "start e1" not in rig.journal
        rig.speech.release("s1")
        await rig.seq.idle()
    assert rig.journal[-1] == "end e1"


async def test_directives_without_dialog_run_one_at_a_time_per_handler(rig: Rig) -> None:
    async with asyncio.timeout(LIMIT):
        rig.seq.submit(d("SpeechSynthesizer.Speak", "a", None, hold=True))
        rig.seq.submit(d("SpeechSynthesizer.Speak", "b", None))
        rig.seq.submit(d("Speaker.SetVolume", "v", None))
        await rig.wait_for("end v")
        assert "start b" not in rig.journal
        rig.speech.release("a")
        await rig.seq.idle()
    assert rig.journal.index("end a") < rig.journal.index("start b")


@pytest.mark.parametrize(("current", "dialog"), [(None, "d1"), ("d2", "d1"), ("d1", "")])
async def test_directives_of_another_dialog_are_dropped(rig: Rig, current: str | None, dialog: str) -> None:
    async with asyncio.timeout(LIMIT):
        if current:
            await rig.seq.new_dialog(current)
        raw = json.dumps({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume",
                                                   "messageId": "v1", "dialogRequestId": dialog or "null"},
                                        "payload": {}}})
        rig.seq.submit(parse_directive(raw))
        await rig.seq.idle()
    # "null" / "" mean no dialog (§5.3) and are handled; a real foreign id is dropped without a report.
    expected = ["start v1", "end v1"] if not dialog else []
    assert rig.journal == expected
    assert rig.reports == []


async def test_new_dialog_cancels_running_and_queued(rig: Rig) -> None:
    async with asyncio.timeout(LIMIT):
        await rig.seq.new_dialog("d1")
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s1", "d1", hold=True))
        rig.seq.submit(d("SpeechRecognizer.ExpectSpeech", "e1", "d1"))
        await rig.wait_for("start s1")
        await rig.seq.new_dialog("d2")
        assert rig.journal == ["start s1", "cancel e1", "cancel s1", "end s1"]
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s2", "d2"))
        rig.seq.submit(d("SpeechRecognizer.ExpectSpeech", "e-late", "d1"))  # straggler of the old dialog
        await rig.seq.idle()
    assert "start e1" not in rig.journal and "start e-late" not in rig.journal
    assert rig.journal[-2:] == ["start s2", "end s2"]


async def test_set_dialog_request_id_cancels_in_background(rig: Rig) -> None:
    async with asyncio.timeout(LIMIT):
        await rig.seq.new_dialog("d1")
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s1", "d1", hold=True))
        await rig.wait_for("start s1")
        rig.seq.set_dialog_request_id("d2")
        assert rig.seq.dialog_request_id == "d2"
        await rig.seq.idle()
    assert rig.journal == ["start s1", "cancel s1", "end s1"]


@pytest.mark.parametrize("rig", [SequencerSettings(cancel_grace_s=0.05)], indirect=True)
async def test_handler_ignoring_cancel_gets_its_task_cancelled(rig: Rig) -> None:
    async with asyncio.timeout(LIMIT):
        await rig.seq.new_dialog("d1")
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s1", "d1", hold=True, stubborn=True))
        await rig.wait_for("start s1")
        await rig.seq.new_dialog("d2")
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s2", "d2"))
        await rig.seq.idle()
    assert rig.speech.hard_cancelled == ["s1"]
    assert rig.journal == ["start s1", "cancel s1", "start s2", "end s2"]
    assert rig.reports == []


async def test_unknown_directive_reports_unsupported_operation(rig: Rig) -> None:
    async with asyncio.timeout(LIMIT):
        raw = '{"directive":{"header":{"namespace":"Foo","name":"Bar","messageId":"m1"},"payload":{}}}'
        rig.seq.submit(parse_directive(raw))
        await rig.seq.idle()
    assert len(rig.reports) == 1
    payload = rig.reports[0].payload
    assert rig.reports[0].qualified_name == "System.ExceptionEncountered"
    assert payload["error"]["type"] == "UNSUPPORTED_OPERATION"
    assert payload["unparsedDirective"] == raw


@pytest.mark.parametrize(
    ("fail", "error_type"), [("parse", "UNEXPECTED_INFORMATION_RECEIVED"), ("boom", "INTERNAL_ERROR")]
)
async def test_handler_errors_are_reported_and_carried_on(rig: Rig, fail: str, error_type: str) -> None:
    async with asyncio.timeout(LIMIT):
        rig.seq.submit(d("Speaker.SetVolume", "v1", None, fail=fail))
        rig.seq.submit(d("Speaker.SetVolume", "v2", None))
        await rig.seq.idle()
    assert [r.payload["error"]["type"] for r in rig.reports] == [error_type]
    assert json.loads(rig.reports[0].payload["unparsedDirective"])["directive"]["header"]["messageId"] == "v1"
    assert rig.journal == ["start v1", "start v2", "end v2"]


async def test_failure_scrubs_the_rest_of_its_dialog(rig: Rig) -> None:
    async with asyncio.timeout(LIMIT):
        await rig.seq.new_dialog("d1")
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s1", "d1", fail="boom"))
        rig.seq.submit(d("SpeechRecognizer.ExpectSpeech", "e1", "d1"))
        await rig.seq.idle()
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s2", "d1"))  # later directive of the failed dialog
        await rig.seq.idle()
        await rig.seq.new_dialog("d2")
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s3", "d2"))
        await rig.seq.idle()
    assert rig.journal == ["start s1", "cancel e1", "start s3", "end s3"]
    assert [r.payload["error"]["type"] for r in rig.reports] == ["INTERNAL_ERROR"]


@pytest.mark.parametrize("rig", [SequencerSettings(scrub_dialog_on_failure=False)], indirect=True)
async def test_failure_scrub_can_be_disabled(rig: Rig) -> None:
    async with asyncio.timeout(LIMIT):
        await rig.seq.new_dialog("d1")
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s1", "d1", fail="boom"))
        rig.seq.submit(d("SpeechRecognizer.ExpectSpeech", "e1", "d1"))
        await rig.seq.idle()
    assert rig.journal == ["start s1", "start e1", "end e1"]


async def test_failing_exception_sender_does_not_stop_the_sequencer(rig: Rig) -> None:
    rig.fail_reports = True
    async with asyncio.timeout(LIMIT):
        rig.seq.submit(d("Nope.Nothing", "x1", None))
        rig.seq.submit(d("Speaker.SetVolume", "v1", None))
        await rig.seq.idle()
    assert rig.journal == ["start v1", "end v1"]


@pytest.mark.parametrize("rig", [SequencerSettings(queue_size=4)], indirect=True)
async def test_lanes_are_bounded(rig: Rig) -> None:
    async with asyncio.timeout(LIMIT):
        rig.seq.submit(d("Speaker.SetVolume", "hold", None, hold=True))
        await rig.wait_for("start hold")
        for i in range(10):
            rig.seq.submit(d("Speaker.SetVolume", f"v{i}", None))
        rig.speaker.release("hold")
        await rig.seq.idle()
    started = [e for e in rig.journal if e.startswith("start")]
    assert started == ["start hold"] + [f"start v{i}" for i in range(4)]


async def test_register_rejects_a_second_handler_for_the_same_directive() -> None:
    seq = DirectiveSequencer(lambda e: asyncio.sleep(0))
    seq.register(RecordingHandler([], [("Speaker", "SetVolume")]))
    with pytest.raises(ValueError, match=r"Speaker\.SetVolume"):
        seq.register(RecordingHandler([], [("Speaker", "SetVolume")]))


async def test_close_stops_run_and_a_held_handler() -> None:
    r = Rig()
    async with asyncio.timeout(LIMIT):
        task = asyncio.create_task(r.seq.run())
        r.seq.submit(d("Speaker.SetVolume", "v1", None, hold=True, stubborn=True))
        await r.wait_for("start v1")
        await r.seq.close()
        await task
    assert r.speaker.hard_cancelled == ["v1"]


async def test_handler_registered_while_running_gets_a_lane(rig: Rig) -> None:
    late = RecordingHandler(rig.journal, [("Alerts", "SetAlert")])
    rig.seq.register(late)
    async with asyncio.timeout(LIMIT):
        rig.seq.submit(d("Alerts.SetAlert", "a1", None))
        await rig.seq.idle()
    assert rig.journal == ["start a1", "end a1"]


async def test_idle_waits_on_progress_without_polling(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """idle() is awaited for a whole answer in production: it must sleep until work moves, never poll a timer."""
    async with asyncio.timeout(LIMIT):
        await rig.seq.new_dialog("d1")
        rig.seq.submit(d("SpeechSynthesizer.Speak", "s1", "d1", hold=True))
        rig.seq.submit(d("Speaker.SetVolume", "v1", "d1"))
        await rig.wait_for("start s1")
        timers: list[float] = []
        real_sleep = asyncio.sleep

        async def no_timers(delay: float, result: object = None) -> object:
            if delay > 0:
                timers.append(delay)
            return await real_sleep(delay, result)

        monkeypatch.setattr(asyncio, "sleep", no_timers)
        idle = asyncio.create_task(rig.seq.idle())
        for _ in range(20):  # the handler is held: idle must stay pending, parked on an event
            await real_sleep(0)
        assert not idle.done() and not rig.seq.is_idle()
        rig.speech.release("s1")
        await idle
        assert rig.seq.is_idle()
        assert rig.journal[-2:] == ["start v1", "end v1"]  # the Speak blocked the dialog until released
        assert timers == [], f"idle() polled with sleeps of {timers} s"
