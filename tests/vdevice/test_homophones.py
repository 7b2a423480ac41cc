"""Bespoken's own test vectors (virtual-device-sdk test/VirtualDeviceTest.ts) and the edge rules."""

from __future__ import annotations

import pytest

from avsd.vdevice.homophones import apply_homophones, homophone_rules


def test_bespoken_vector_chains_rules_in_order() -> None:
    rules = homophone_rules(
        {"test": ["tess", "teds"], "to": ["too"], "are_really_good": ["are good"], "a lot with": ["with"]}
    )
    assert (
        apply_homophones("the teds tools are good too tess with", rules)
        == "the test tools are really good to test a lot with"
    )


def test_bespoken_vector_non_ascii() -> None:
    rules = homophone_rules({"Oi Ter você": ["Oi tem você"]})
    assert apply_homophones("Oi tem você pra mim", rules) == "Oi Ter você pra mim"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tess, tess. TESS", "test, test. test"),  # case-insensitive, key's own case
        ("tessellate contest", "tessellate contest"),  # whole words only
        ('"tess"', '"test"'),
        ("", ""),
    ],
)
def test_whole_words_case_insensitive(text: str, expected: str) -> None:
    assert apply_homophones(text, homophone_rules({"test": ["tess"]})) == expected


def test_pattern_is_not_escaped_and_bad_pattern_is_literal() -> None:
    assert apply_homophones("a1b", homophone_rules({"x": ["a.b"]})) == "x"
    assert apply_homophones("f(x is", homophone_rules({"y": ["f(x"]})) == "y is"
