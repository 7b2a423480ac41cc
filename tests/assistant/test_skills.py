"""Skills are pure: intents + the device's context + a clock -> text and directives."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from avsd.assistant.grammar import Language
from avsd.assistant.skills import INITIATOR_TYPE, DeviceState, Skills, SkillSettings, avs_time

TZ = datetime.timezone(datetime.timedelta(hours=2))
NOW = datetime.datetime(2026, 12, 1, 20, 15, 0, tzinfo=TZ)  # a Tuesday


@pytest.fixture(scope="module")
def lang() -> Language:
    return Language.load()


def skills(lang: Language, **kw: Any) -> Skills:
    return Skills(lang, SkillSettings(ids=("id1", "id2", "id3"), **kw))


def context(alerts: list[dict[str, str]] = (), active: list[str] = (), **extra: Any) -> dict[str, Any]:  # type: ignore[assignment]
    ctx = [
        {
            "header": {"namespace": "Alerts", "name": "AlertsState"},
            "payload": {"allAlerts": list(alerts), "activeAlerts": [{"token": t} for t in active]},
        },
        {"header": {"namespace": "Speaker", "name": "VolumeState"}, "payload": {"volume": 50, "muted": False}},
    ]
    event: dict[str, Any] = {"context": ctx, "event": {"header": {}, "payload": extra}}
    return event


def ask(lang: Language, text: str, event: dict[str, Any] | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    return skills(lang, **kw).handle(lang.parse(text), DeviceState.from_event(event or context()), NOW)


def test_time_12_and_24_hour(lang: Language) -> None:
    assert ask(lang, "what time is it").text == "It is 8:15 PM."
    assert ask(lang, "what time is it", clock_24h=True).text == "It is 20:15."


def test_date(lang: Language) -> None:
    assert ask(lang, "what's the date today").text == "Today is Tuesday, December 1."


def test_set_timer_is_a_set_alert(lang: Language) -> None:
    reply = ask(lang, "set a pasta timer for ten minutes")
    assert reply.text == "Pasta timer set for 10 minutes."
    (alert,) = reply.directives
    assert alert.qualified_name == "Alerts.SetAlert"
    assert alert.payload == {
        "token": "avsd-assistant.timer.pasta.id1",
        "type": "TIMER",
        "scheduledTime": "2026-12-01T18:25:00+0000",
    }


def test_missing_duration_asks_back_and_the_answer_completes_it(lang: Language) -> None:
    question = ask(lang, "set a timer")
    assert question.text == "For how long?" and not question.directives
    assert question.expect is not None and question.expect["type"] == INITIATOR_TYPE
    answer = ask(lang, "five minutes", context(initiator=dict(question.expect)))
    assert answer.text == "Timer set for 5 minutes."
    assert answer.directives[0].payload["scheduledTime"] == avs_time(NOW + datetime.timedelta(minutes=5))


def _timer(token: str, minutes: int) -> dict[str, str]:
    return {"token": token, "type": "TIMER", "scheduledTime": avs_time(NOW + datetime.timedelta(minutes=minutes))}


def test_cancel_named_timer_among_several(lang: Language) -> None:
    event = context([_timer("avsd-assistant.timer.egg.a", 3), _timer("avsd-assistant.timer.pasta.b", 9)])
    reply = ask(lang, "cancel the pasta timer", event)
    assert reply.text == "Pasta timer cancelled."
    assert [d.payload for d in reply.directives] == [{"token": "avsd-assistant.timer.pasta.b"}]
    assert ask(lang, "cancel the rice timer", event).text == "You have no rice timer."
    assert len(ask(lang, "cancel all timers", event).directives) == 2


def test_time_left_and_list(lang: Language) -> None:
    event = context([_timer("avsd-assistant.timer.pasta.b", 9)])
    assert ask(lang, "how much time is left on the pasta timer", event).text == "9 minutes left on your pasta timer."
    assert ask(lang, "what timers do i have", event).text == "You have one timer: pasta timer, 9 minutes left."
    assert ask(lang, "how much time is left").text == "You have no timers."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wake me up at seven thirty", "2026-12-02T05:30:00+0000"),  # 20:15 now: next 7:30 is tomorrow morning
        ("set an alarm for nine", "2026-12-01T19:00:00+0000"),  # no AM/PM: the next nine, tonight
        ("set an alarm for 6 am tomorrow", "2026-12-02T04:00:00+0000"),
        ("set an alarm for eight p m on friday", "2026-12-04T18:00:00+0000"),
    ],
)
def test_alarm_times(lang: Language, text: str, expected: str) -> None:
    reply = ask(lang, text)
    assert reply.directives[0].payload["scheduledTime"] == expected, reply


def test_volume(lang: Language) -> None:
    assert ask(lang, "set the volume to fifty").text == "The volume goes from zero to ten."
    assert ask(lang, "set the volume to four").directives[0].payload == {"volume": 40}
    assert ask(lang, "turn it up").directives[0].payload == {"volume": 10}
    assert ask(lang, "mute").directives[0].qualified_name == "Speaker.SetMute"
    assert ask(lang, "set the volume to twenty").text == "The volume goes from zero to ten."


def test_stop_deletes_the_ringing_alert(lang: Language) -> None:
    event = context([_timer("avsd-assistant.timer..a", 0)], active=["avsd-assistant.timer..a"])
    reply = ask(lang, "stop", event)
    assert reply.text == ""
    assert [(d.qualified_name, d.payload) for d in reply.directives] == [
        ("Alerts.DeleteAlert", {"token": "avsd-assistant.timer..a"})
    ]
    assert ask(lang, "never mind").directives == ()


def test_fallback_and_help(lang: Language) -> None:
    assert ask(lang, "tell me a joke").text.startswith("Sorry")
    assert "timers" in ask(lang, "what can you do").text
