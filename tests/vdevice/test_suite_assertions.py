"""The YAML format and assertion semantics of skill-testing-ml, on Bespoken's own documented example."""

from __future__ import annotations

from typing import Any

import pytest

from avsd.vdevice.assertions import Assertion, Operator, evaluate, value_at_path
from avsd.vdevice.suite import SuiteError, parse_suite

EXAMPLE = """
---
configuration:
  locale: en-US
  voiceId: Joey
---
- test: Launch, play once with one player, stop
- tags: smoke
- launch voice app: how many persons are playing today     # contains, case-insensitive
- one:
  - prompt:
    - please tell us your name
    - please tell us what is your name
- jesus: let's start the game jesus your product is * guess the price
- two hundred:
  - prompt: /you said 200 .* points/i
  - streamURL: undefined
- $PAUSE 0.5
- stop
---
- test: Launch, play once with one player, stop
- open == "welcome"
- cardTitle check:
  - cardTitle != undefined
  - "raw.messageBody.directives[0].header.namespace": SpeechSynthesizer
  - sessionTimeout > 3
"""


def test_parses_bespoken_example() -> None:
    suite = parse_suite(
        EXAMPLE, "one.e2e.yml", testing={"findReplace": {"launch voice app": "open guess the price"}, "x": 1}
    )
    assert suite.configuration == {"x": 1, "locale": "en-US", "voiceId": "Joey"}
    first, second = suite.tests
    assert first.name == "Launch, play once with one player, stop"
    assert second.name == "Launch, play once with one player, stop (2)"
    assert first.tags == ("smoke",)
    utterances = [i.utterance for i in first.interactions]
    assert utterances == ["open guess the price", "one", "jesus", "two hundred", "$PAUSE 0.5", "stop"]
    assert first.interactions[4].pause_s == 0.5
    one = first.interactions[1]
    assert one.assertions == (
        Assertion("prompt", Operator.EQUALS, ["please tell us your name", "please tell us what is your name"]),
    )
    assert one.phrases == ["please tell us your name", "please tell us what is your name"]
    regex, stream = first.interactions[3].assertions
    assert regex.operator is Operator.MATCHES
    assert stream == Assertion("streamURL", Operator.EQUALS, None)
    assert second.interactions[0].assertions == (Assertion("prompt", Operator.EQUALS, "welcome", False),)
    paths = [a.path for a in second.interactions[1].assertions]
    assert paths == ["cardTitle", "raw.messageBody.directives[0].header.namespace", "sessionTimeout"]


RESULT: dict[str, Any] = {
    "transcript": "Welcome! How many persons are playing today?",
    "streamURL": None,
    "card": {"mainTitle": "Facts", "textField": "A fact", "imageURL": None},
    "sessionTimeout": 8,
    "raw": {"messageBody": {"directives": [{"header": {"namespace": "SpeechSynthesizer"}}]}},
}


@pytest.mark.parametrize(
    ("assertion", "expected"),
    [
        (Assertion("prompt", Operator.EQUALS, "how many persons"), True),  # contains, case-insensitive
        (Assertion("prompt", Operator.EQUALS, "WELCOME"), True),
        (Assertion("prompt", Operator.EQUALS, "welcome*today"), True),  # * wildcard
        (Assertion("prompt", Operator.EQUALS, "goodbye"), False),
        (Assertion("prompt", Operator.EQUALS, ["nope", "playing*"]), True),  # any of
        (Assertion("prompt", Operator.EQUALS, "today?"), True),  # ? escaped, literal
        (Assertion("prompt", Operator.EQUALS, "/^welcome!/"), True),  # regex via "/"
        (Assertion("prompt", Operator.EQUALS, "/^how/"), False),
        (Assertion("cardTitle", Operator.EQUALS, "facts"), False),  # only prompt/transcript ignore case
        (Assertion("cardTitle", Operator.EQUALS, "Facts"), True),
        (Assertion("cardContent", Operator.EQUALS, "fact"), True),
        (Assertion("cardImageURL", Operator.EQUALS, None), True),  # undefined
        (Assertion("streamURL", Operator.NOT_EQUALS, None), False),
        (Assertion("cardTitle", Operator.NOT_EQUALS, None), True),
        (Assertion("prompt", Operator.NOT_EQUALS, ["bye", "ciao"]), True),
        (Assertion("prompt", Operator.NOT_EQUALS, ["bye", "welcome"]), False),
        (Assertion("sessionTimeout", Operator.GREATER, 3), True),
        (Assertion("sessionTimeout", Operator.LESS_EQUAL, 7), False),
        (Assertion("raw.messageBody.directives[0].header.namespace", Operator.EQUALS, "Speech"), True),
        (Assertion("$.raw.messageBody.directives[1].header", Operator.EQUALS, None), True),
        (Assertion("prompt", Operator.MATCHES, "how .* playing", False), True),
    ],
)
def test_assertion_semantics(assertion: Assertion, expected: bool) -> None:
    assert evaluate(assertion, RESULT) is expected


def test_lenient_mode_strips_punctuation() -> None:
    a = Assertion("prompt", Operator.EQUALS, "welcome how many")
    assert not evaluate(a, RESULT)
    assert evaluate(a, RESULT, lenient=True)


def test_value_at_path_missing_is_undefined() -> None:
    assert value_at_path(RESULT, "card.nothing.deeper") is None
    assert value_at_path(RESULT, "raw.messageBody.directives[5]") is None


def test_bad_suite_is_a_clear_error() -> None:
    with pytest.raises(SuiteError, match="not valid YAML"):
        parse_suite("- a: [", "bad.yml")
    with pytest.raises(SuiteError, match="must be numeric"):
        parse_suite("- hi:\n  - sessionTimeout > many\n", "bad.yml")
