"""Fuzzing, the short version of bench/bench_fuzz.py (which runs >= 100,000 inputs), plus the findings it made
as plain regression tests."""

from __future__ import annotations

import random

import pytest

from avsd.agents.alert_schedule import alert_from_directive
from avsd.avs.messages import Directive
from avsd.errors import AvsdError, DirectiveParseError
from bench.bench_fuzz import DIRECTIVE_SEEDS, fuzz, mutate


def test_short_fuzz_run_stays_inside_the_error_tree() -> None:
    result = fuzz(3000, seed=3)
    assert result.findings == []
    assert result.over_1s == 0 and result.slowest_s < 1.0
    assert sum(result.inputs.values()) >= 3000
    # The mutator must produce both refusals and inputs that still parse, or it tests nothing.
    for name, count in result.inputs.items():
        assert 0 < result.rejected[name] < count, (name, result.rejected[name], count)


def test_the_mutator_is_seeded() -> None:
    seed = DIRECTIVE_SEEDS[0]
    assert mutate(seed, random.Random(5)) == mutate(seed, random.Random(5))
    assert mutate(seed, random.Random(5)) != mutate(seed, random.Random(6))


@pytest.mark.parametrize(
    "payload",
    [
        {"assets": 5},  # was TypeError: 'int' object is not iterable
        {"scheduledTime": "9999-12-31T23:59:59-01:00"},  # was OverflowError (year 10000 in UTC)
    ],
)
def test_fuzz_findings_are_directive_errors(payload: dict[str, object]) -> None:
    base = {"token": "t", "type": "ALARM", "scheduledTime": "2026-12-01T07:00:00+0000"}
    directive = Directive.new("Alerts", "SetAlert", {**base, **payload})
    with pytest.raises(DirectiveParseError):
        alert_from_directive(directive)
    assert issubclass(DirectiveParseError, AvsdError)
