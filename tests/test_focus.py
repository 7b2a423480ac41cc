"""Focus manager and ducking: every (held channels, acquire/release) pair, plus the SDK sequences of §7.2."""

from __future__ import annotations

import pytest

from avsd.focus import (
    Behavior,
    Channel,
    ContentPolicy,
    DuckableVolume,
    FocusChange,
    FocusManager,
    FocusSettings,
    FocusState,
)

D, A, C = Channel.DIALOG, Channel.ALERTS, Channel.CONTENT
F, B, N = FocusState.FOREGROUND, FocusState.BACKGROUND, FocusState.NONE
_LETTER = {"D": D, "A": A, "C": C}
_IDS = {D: "dialog", A: "alerts", C: "content"}
_CODE = {F: "F", B: "B", N: "-"}


def _manager(held: str, settings: FocusSettings | None = None) -> FocusManager:
    fm = FocusManager(settings)
    for letter in held:
        if letter != "-":
            fm.acquire(_LETTER[letter], _IDS[_LETTER[letter]])
    return fm


def _focus_code(fm: FocusManager) -> str:
    return "".join(_CODE[fm.focus_of(c)] for c in (D, A, C))


# (held before: D/A/C or -, action: +X acquire X by a NEW activity / -X release X by its holder, focus after)
TABLE = [
    ("DAC", "+D", "FBB"), ("DAC", "+A", "FBB"), ("DAC", "+C", "FBB"),
    ("DAC", "-D", "-FB"), ("DAC", "-A", "F-B"), ("DAC", "-C", "FB-"),
    ("DA-", "+D", "FB-"), ("DA-", "+A", "FB-"), ("DA-", "+C", "FBB"),
    ("DA-", "-D", "-F-"), ("DA-", "-A", "F--"), ("DA-", "-C", "FB-"),
    ("D-C", "+D", "F-B"), ("D-C", "+A", "FBB"), ("D-C", "+C", "F-B"),
    ("D-C", "-D", "--F"), ("D-C", "-A", "F-B"), ("D-C", "-C", "F--"),
    ("D--", "+D", "F--"), ("D--", "+A", "FB-"), ("D--", "+C", "F-B"),
    ("D--", "-D", "---"), ("D--", "-A", "F--"), ("D--", "-C", "F--"),
    ("-AC", "+D", "FBB"), ("-AC", "+A", "-FB"), ("-AC", "+C", "-FB"),
    ("-AC", "-D", "-FB"), ("-AC", "-A", "--F"), ("-AC", "-C", "-F-"),
    ("-A-", "+D", "FB-"), ("-A-", "+A", "-F-"), ("-A-", "+C", "-FB"),
    ("-A-", "-D", "-F-"), ("-A-", "-A", "---"), ("-A-", "-C", "-F-"),
    ("--C", "+D", "F-B"), ("--C", "+A", "-FB"), ("--C", "+C", "--F"),
    ("--C", "-D", "--F"), ("--C", "-A", "--F"), ("--C", "-C", "---"),
    ("---", "+D", "F--"), ("---", "+A", "-F-"), ("---", "+C", "--F"),
    ("---", "-D", "---"), ("---", "-A", "---"), ("---", "-C", "---"),
]  # fmt: skip


@pytest.mark.parametrize(("held", "action", "after"), TABLE)
def test_focus_table(held: str, action: str, after: str) -> None:
    fm = _manager(held)
    before = {c: (fm.holder(c), fm.focus_of(c)) for c in Channel}
    channel = _LETTER[action[1]]
    new_id = f"new-{channel}"
    changes = fm.acquire(channel, new_id) if action[0] == "+" else fm.release(channel, _IDS[channel])
    assert _focus_code(fm) == after

    # Every activity whose focus differs is told once, with its new focus; nobody else is told anything.
    expected: set[tuple[str, FocusState]] = set()
    for c in Channel:
        old_holder, old_focus = before[c]
        new_holder, new_focus = fm.holder(c), fm.focus_of(c)
        if old_holder is not None and old_holder != new_holder:
            expected.add((old_holder, N))
        if new_holder is not None and (new_holder != old_holder or new_focus != old_focus):
            expected.add((new_holder, new_focus))
    got = [(ch.activity_id, ch.focus) for ch in changes]
    assert sorted(got) == sorted(expected)
    assert len(got) == len(set(got))
    # Losers first: a FOREGROUND grant is always the last change.
    focuses = [ch.focus for ch in changes]
    assert F not in focuses[:-1]


@pytest.mark.parametrize("held", sorted({row[0] for row in TABLE}))
@pytest.mark.parametrize("letter", "DAC")
def test_reacquire_by_holder_and_release_by_stranger_change_nothing(held: str, letter: str) -> None:
    fm = _manager(held)
    channel = _LETTER[letter]
    before = _focus_code(fm)
    assert fm.release(channel, "stranger") == []
    if fm.holder(channel) is not None:
        assert fm.acquire(channel, _IDS[channel]) == []
    assert _focus_code(fm) == before


def test_music_then_dialog_pauses_then_resumes() -> None:
    fm = FocusManager()
    assert fm.acquire(C, "AudioPlayer") == [FocusChange("AudioPlayer", C, F, Behavior.PLAY)]
    assert fm.acquire(D, "SpeechRecognizer") == [
        FocusChange("AudioPlayer", C, B, Behavior.PAUSE),
        FocusChange("SpeechRecognizer", D, F, Behavior.PLAY),
    ]
    # Recognizer hands the Dialog channel to the synthesizer: old holder NONE first, content untouched.
    assert fm.acquire(D, "SpeechSynthesizer") == [
        FocusChange("SpeechRecognizer", D, N, Behavior.STOP),
        FocusChange("SpeechSynthesizer", D, F, Behavior.PLAY),
    ]
    assert fm.release(D, "SpeechSynthesizer") == [
        FocusChange("SpeechSynthesizer", D, N, Behavior.STOP),
        FocusChange("AudioPlayer", C, F, Behavior.PLAY),
    ]


def test_duck_policy_and_alert_background_behaviour() -> None:
    fm = FocusManager(FocusSettings(content_policy=ContentPolicy.DUCK))
    fm.acquire(C, "music")
    fm.acquire(A, "alarm")
    assert fm.acquire(D, "speech") == [
        FocusChange("alarm", A, B, Behavior.DUCK),
        FocusChange("speech", D, F, Behavior.PLAY),
    ]
    # Content was already BACKGROUND under the alert: not told again.
    assert fm.focus_of(C) is B
    assert fm.stop_foreground() == [
        FocusChange("speech", D, N, Behavior.STOP),
        FocusChange("alarm", A, F, Behavior.PLAY),
    ]
    assert fm.stop_all() == [
        FocusChange("alarm", A, N, Behavior.STOP),
        FocusChange("music", C, N, Behavior.STOP),
    ]
    assert fm.stop_foreground() == []


def test_music_backgrounded_by_alert_pauses_by_default() -> None:
    fm = FocusManager()
    fm.acquire(C, "music")
    assert fm.acquire(A, "timer")[0] == FocusChange("music", C, B, Behavior.PAUSE)


# Ducking: each row is a sequence of operations and the (user_volume, effective) after each one.
DUCK_CASES = [
    ("duck then unduck", [("duck", None), ("unduck", None)], [(60, 20), (60, 60)]),
    ("set volume while ducked", [("duck", None), ("set", 80), ("unduck", None)],
     [(60, 20), (80, 20), (80, 80)]),
    ("adjust while ducked", [("duck", None), ("adjust", -30), ("unduck", None)],
     [(60, 20), (30, 20), (30, 30)]),
    ("ducking never stacks", [("duck", None), ("duck", None), ("duck", None), ("unduck", None)],
     [(60, 20), (60, 20), (60, 20), (60, 60)]),
    ("unduck when not ducked", [("unduck", None), ("unduck", None)], [(60, 60), (60, 60)]),
    ("never raises volume", [("set", 10), ("duck", None), ("set", 5), ("unduck", None)],
     [(10, 10), (10, 10), (5, 5), (5, 5)]),
    ("clamped", [("set", 130), ("adjust", -200)], [(100, 100), (0, 0)]),
    ("mute while ducked", [("duck", None), ("mute", True), ("unduck", None), ("mute", False)],
     [(60, 20), (60, 0), (60, 0), (60, 60)]),
    ("set volume unmutes", [("mute", True), ("set", 40)], [(60, 0), (40, 40)]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "ops", "expected"), DUCK_CASES, ids=[c[0] for c in DUCK_CASES])
def test_ducking(name: str, ops: list[tuple[str, object]], expected: list[tuple[int, int]]) -> None:
    vol = DuckableVolume(user_volume=60, duck_level=20)
    for (op, arg), (user, effective) in zip(ops, expected, strict=True):
        if op == "duck":
            vol = vol.duck()
        elif op == "unduck":
            vol = vol.unduck()
        elif op == "set":
            assert isinstance(arg, int)
            vol = vol.set_volume(arg)
        elif op == "adjust":
            assert isinstance(arg, int)
            vol = vol.adjust_volume(arg)
        else:
            assert isinstance(arg, bool)
            vol = vol.set_mute(arg)
        assert (vol.user_volume, vol.effective) == (user, effective), op


def test_volume_follows_focus_changes() -> None:
    fm = FocusManager(FocusSettings(content_policy=ContentPolicy.DUCK, duck_level=15))
    vol = DuckableVolume(user_volume=70, duck_level=fm.settings.duck_level)
    fm.acquire(C, "music")
    for change in fm.acquire(D, "speech"):
        if change.activity_id == "music":
            vol = vol.apply(change.behavior)
    assert vol.effective == 15
    vol = vol.set_volume(35)  # Speaker.SetVolume arrives during the dialog
    assert vol.effective == 15
    for change in fm.release(D, "speech"):
        if change.activity_id == "music":
            vol = vol.apply(change.behavior)
    assert (vol.user_volume, vol.effective) == (35, 35)
    assert vol.apply(Behavior.PAUSE) == vol
