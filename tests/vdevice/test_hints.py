from __future__ import annotations

import pytest

from avsd.vdevice.hints import apply_phrase_hints


@pytest.mark.parametrize(
    ("transcript", "phrases", "expected"),
    [
        ("this is the a v s d emulate or it is ten", ["emulator"], "this is the a v s d emulator it is ten"),
        ("please tell us you're name", ["please tell us your name"], "please tell us your name"),
        ("the weather in paris", ["emulator"], "the weather in paris"),  # nothing close: untouched
        ("let's start the game", ["let's start the game"], "let's start the game"),
        ("welcome to guess the prize", ["welcome*guess the price"], "welcome to guess the price"),
        ("", ["anything"], ""),
        ("hello", ["/hel+o/i"], "hello"),
    ],
)
def test_phrase_hints(transcript: str, phrases: list[str], expected: str) -> None:
    assert apply_phrase_hints(transcript, phrases) == expected
