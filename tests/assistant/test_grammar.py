"""The assistant's language: patterns -> parser (table-driven) and -> a JSGF grammar pocketsphinx accepts."""

from __future__ import annotations

import tomllib

import pytest

from avsd.assistant.grammar import ANSWER_INTENT, FALLBACK_INTENT, LOCALES_DIR, Clock, Duration, Language


@pytest.fixture(scope="module")
def lang() -> Language:
    return Language.load(music_names=["Bohemian Rhapsody", "Queen", "Abbey Road"])


@pytest.mark.parametrize(
    ("text", "intent", "slots"),
    [
        ("what time is it", "GetTime", {}),
        ("Alexa, what's the time?", "GetTime", {}),
        ("what's the date today", "GetDate", {}),
        ("set a timer for five minutes", "SetTimer", {"duration": Duration(300)}),
        ("Set a timer for 10 minutes.", "SetTimer", {"duration": Duration(600)}),
        ("set a ten second timer", "SetTimer", {"duration": Duration(10)}),
        ("set a timer for one hour and ten minutes", "SetTimer", {"duration": Duration(4200)}),
        ("set a timer for two and a half hours", "SetTimer", {"duration": Duration(9000)}),
        ("set a timer for half an hour", "SetTimer", {"duration": Duration(1800)}),
        ("set a pasta timer for twelve minutes", "SetTimer", {"timer_name": "pasta", "duration": Duration(720)}),
        ("set a timer", "SetTimer", {}),
        ("cancel the pasta timer", "CancelTimer", {"timer_name": "pasta"}),
        ("cancel the timer", "CancelTimer", {}),
        ("how much time is left on the pasta timer", "TimeLeft", {"timer_name": "pasta"}),
        ("what timers do i have", "ListTimers", {}),
        ("wake me up at seven thirty", "SetAlarm", {"clock": Clock(7, 30)}),
        ("set an alarm for 6 am tomorrow", "SetAlarm", {"clock": Clock(6, 0, "am"), "day": "tomorrow"}),
        ("set an alarm for 7:05 p.m.", "SetAlarm", {"clock": Clock(7, 5, "pm")}),
        ("set an alarm for quarter to seven", "SetAlarm", {"clock": Clock(6, 45)}),
        ("wake me up at seven on friday", "SetAlarm", {"clock": Clock(7, 0), "weekday": "friday"}),
        ("set an alarm for monday at six", "SetAlarm", {"weekday": "monday", "clock": Clock(6, 0)}),
        ("cancel my alarm", "CancelAlarm", {}),
        ("turn the volume up", "VolumeUp", {}),
        ("volume down", "VolumeDown", {}),
        ("set the volume to 7", "SetVolume", {"level": 7}),
        ("volume fifty", "SetVolume", {"level": 50}),  # understood, and answered "from zero to ten"
        ("mute", "Mute", {}),
        ("unmute", "Unmute", {}),
        ("um mute", "Unmute", {}),  # pocketsphinx hears "unmute" as a hesitation and "mute"
        ("stop", "Stop", {}),
        ("never mind", "Stop", {}),
        ("play queen", "PlayMusic", {"music": "queen"}),
        ("play bohemian rhapsody", "PlayMusic", {"music": "bohemian rhapsody"}),
        ("next song", "Next", {}),
        ("previous track", "Previous", {}),
        ("pause", "Pause", {}),
        ("resume", "Resume", {}),
        ("what can you do", "Help", {}),
        ("five minutes", ANSWER_INTENT, {"duration": Duration(300)}),
        ("tell me a joke", FALLBACK_INTENT, {}),
        ("", FALLBACK_INTENT, {}),
        # Real people: hesitations, a word said twice, politeness.
        ("um set set a timer for uh five minutes please", "SetTimer", {"duration": Duration(300)}),
        ("could you please tell me the time", "GetTime", {}),
    ],
)
def test_parse(lang: Language, text: str, intent: str, slots: dict[str, object]) -> None:
    got = lang.parse(text)
    assert (got.name, dict(got.slots)) == (intent, slots)


def test_the_recogniser_hears_volume_levels_zero_to_ten_only(lang: Language) -> None:
    jsgf = lang.jsgf()
    assert "<level> = <digit> | ten | zero;" in jsgf
    assert "volume to <level>" in jsgf and "<number>" not in jsgf.split("<i_setvolume> =")[1].split(";")[0]


def test_music_patterns_need_music(lang: Language) -> None:
    assert Language.load().parse("play queen").name == FALLBACK_INTENT


def test_jsgf_lists_every_intent_and_compiles(lang: Language) -> None:
    from avsd.speech.stt import PocketsphinxModel

    jsgf = lang.jsgf()
    for name, _ in lang.intents:
        assert f"<i_{name.lower()}>" in jsgf
    assert "/1e-13/ (<other>)" in jsgf and "<answer>" not in jsgf.split("\n")[2]
    answers = lang.jsgf(answers=True)  # while a question is pending: the answer, or stop
    assert "<answer>" in answers.split("\n")[2] and "<i_stop>" in answers and "<i_settimer>" not in answers
    model = PocketsphinxModel(
        jsgf={"c": jsgf, "a": answers}, words=lang.vocabulary(), pronunciations=lang.pronunciations
    )
    try:
        for grammar in ("c", "a"):  # silence: nothing, or "something else" (the fallback); never a command
            heard = model.transcribe(bytes(16000), grammar).text
            assert lang.parse(heard).name == FALLBACK_INTENT, heard
    finally:
        model.close()


def test_a_second_locale_is_a_data_file() -> None:
    """Only the TOML changes: here a variant with one pattern and one answer translated."""
    data = tomllib.loads((LOCALES_DIR / "en-US.toml").read_text())
    data["locale"] = "xx-XX"
    data["intent"] = [{"name": "GetTime", "patterns": ["what is the hour"]}]
    data["answers"]["time"] = "The hour is {time}."
    other = Language(data)
    assert other.parse("what is the hour").name == "GetTime"
    assert other.parse("what time is it").name == FALLBACK_INTENT
    assert "grammar avsd_xx_xx;" in other.jsgf()


def test_unknown_locale_names_the_available_ones() -> None:
    with pytest.raises(ValueError, match="en-US"):
        Language.load("zz-ZZ")


def test_hesitations_before_a_command_only_when_asked(lang: Language) -> None:
    # The first pass leaves them out (the locale's spoken_hesitations = false); the second pass asks for them.
    assert "[<hes>]" not in lang.jsgf()
    assert "[<hes>] [<prefix>] (<i_gettime>" in lang.jsgf(hesitations=True, reject_unknown=False)
    assert "<other>" not in lang.jsgf(hesitations=True, reject_unknown=False).split("\n")[2]
