"""``avsd test``: Bespoken's e2e YAML suites run natively (no Node), against avsd's own virtual device or any
server that speaks the Virtual Device API (``--base-url``).

Per test: a new conversation, then each interaction in order: ``$PAUSE n`` waits, an utterance is sent with its
phrases as STT hints, homophones from testing.json are applied to the transcript (as the SDK does on the client),
and every assertion is evaluated; a failed assertion does not stop the test (``stopTestOnFailure: false``, the
runner's default). The summary reads like ``bst test``'s; ``--junit FILE`` writes JUnit XML.
"""

from __future__ import annotations

import asyncio
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from avsd.vdevice.assertions import Assertion, evaluate, value_at_path
from avsd.vdevice.homophones import Homophones, apply_homophones, homophone_rules
from avsd.vdevice.suite import Suite, SuiteError, TestCase, parse_suite

SUITE_GLOBS = ("**/test/*.yml", "**/tests/*.yml", "**/*.e2e.yml", "**/*.spec.yml", "**/*.test.yml")


class VirtualDeviceClient(Protocol):
    async def message(self, text: str, phrases: Sequence[str]) -> dict[str, Any]: ...

    async def new_conversation(self) -> None: ...


@dataclass(slots=True)
class InteractionOutcome:
    utterance: str
    failures: list[str] = field(default_factory=list)
    error: str = ""


@dataclass(slots=True)
class TestOutcome:
    suite: str
    name: str
    skipped: bool = False
    interactions: list[InteractionOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.skipped and all(not i.failures and not i.error for i in self.interactions)


def find_suites(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for pattern in SUITE_GLOBS:
                found += sorted(p for p in path.glob(pattern) if p not in found)
            found += sorted(p for p in path.glob("*.yml") if p not in found)
        else:
            found.append(path)
    return found


def load_testing_json(suite_path: Path) -> dict[str, Any]:
    """testing.json beside the suite or in one of its parent folders (the nearest wins), as bst finds it."""
    for folder in [suite_path.parent, *suite_path.parent.parents]:
        candidate = folder / "testing.json"
        if candidate.is_file():
            try:
                loaded = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SuiteError(f"{candidate}: {exc}") from exc
            return loaded if isinstance(loaded, dict) else {}
    return {}


def load_suite(path: Path) -> tuple[Suite, Homophones]:
    testing = load_testing_json(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: {exc}") from exc
    return parse_suite(text, str(path), testing=testing), homophone_rules(testing.get("homophones") or {})


async def run_suite(
    suite: Suite, homophones: Homophones, device: VirtualDeviceClient, *, out: IO[str] | None = None
) -> list[TestOutcome]:
    lenient = bool(suite.configuration.get("lenientMode", False))
    chosen = [t for t in suite.tests if t.only] or list(suite.tests)
    outcomes: list[TestOutcome] = []
    for test in chosen:
        outcome = await _run_test(suite, test, homophones, device, lenient)
        outcomes.append(outcome)
        if out is not None:
            _print_test(outcome, out)
    return outcomes


async def _run_test(
    suite: Suite, test: TestCase, homophones: Homophones, device: VirtualDeviceClient, lenient: bool
) -> TestOutcome:
    outcome = TestOutcome(suite.name, test.name, skipped=test.skip)
    if test.skip:
        return outcome
    started = time.monotonic()
    await device.new_conversation()
    for interaction in test.interactions:
        pause = interaction.pause_s
        if pause is not None:
            await asyncio.sleep(pause)
            continue
        result_outcome = InteractionOutcome(interaction.utterance)
        outcome.interactions.append(result_outcome)
        try:
            result = await device.message(interaction.utterance, interaction.phrases)
        except Exception as exc:  # the device's error is this interaction's failure, the run goes on
            result_outcome.error = f"{exc.__class__.__name__}: {exc}"
            continue
        if result.get("transcript"):
            result.setdefault("debug", {})["rawTranscript"] = result["transcript"]
            result["transcript"] = apply_homophones(str(result["transcript"]), homophones)
        for assertion in interaction.assertions:
            if not evaluate(assertion, result, lenient=lenient):
                result_outcome.failures.append(_failure_text(assertion, result))
        if interaction.exit_after:
            break
    outcome.seconds = time.monotonic() - started
    return outcome


def _failure_text(assertion: Assertion, result: dict[str, Any]) -> str:
    expected = assertion.value if isinstance(assertion.value, list) else [assertion.value]
    verb = "be one of:" if isinstance(assertion.value, list) else assertion.operator.value
    lines = "\n".join(f"\t{'undefined' if v is None else v}" for v in expected)
    received = value_at_path(result, assertion.path)
    shown = "undefined" if received is None else received
    return f"Expected value at [{assertion.path}] to {verb}\n{lines}\nReceived:\n\t{shown}"


def _print_test(outcome: TestOutcome, out: IO[str]) -> None:
    mark = "SKIP" if outcome.skipped else ("PASS" if outcome.passed else "FAIL")
    out.write(f"{mark}  {outcome.name}  ({outcome.seconds:.1f} s)\n")
    for interaction in outcome.interactions:
        for failure in interaction.failures:
            out.write(f"      {interaction.utterance}: " + failure.replace("\n", "\n        ") + "\n")
        if interaction.error:
            out.write(f"      {interaction.utterance}: error: {interaction.error}\n")


def summary_line(outcomes: Sequence[TestOutcome]) -> str:
    passed = sum(o.passed for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    failed = len(outcomes) - passed - skipped
    return f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else "")


def junit_xml(outcomes: Sequence[TestOutcome]) -> str:
    root = ET.Element("testsuites")
    by_suite: dict[str, list[TestOutcome]] = {}
    for outcome in outcomes:
        by_suite.setdefault(outcome.suite, []).append(outcome)
    for name, items in by_suite.items():
        failures = sum(not o.passed and not o.skipped for o in items)
        suite = ET.SubElement(
            root, "testsuite", name=name, tests=str(len(items)), failures=str(failures),
            skipped=str(sum(o.skipped for o in items)), time=f"{sum(o.seconds for o in items):.3f}",
        )
        for outcome in items:
            case = ET.SubElement(suite, "testcase", classname=name, name=outcome.name, time=f"{outcome.seconds:.3f}")
            if outcome.skipped:
                ET.SubElement(case, "skipped")
            elif not outcome.passed:
                problems = [(i.utterance, p) for i in outcome.interactions for p in [*i.failures, i.error] if p]
                text = "\n\n".join(f"{utterance}: {problem}" for utterance, problem in problems)
                ET.SubElement(case, "failure", message="assertion failed").text = text
    return ET.tostring(root, encoding="unicode")
