"""Bespoken's e2e YAML test format (skill-testing-ml ``TestParser``), parsed into plain data. Pure: text in.

A file is a suite: a multi-document YAML stream. An optional first document ``configuration:`` (merged over
``testing.json``); each later document is a list (one test) whose first one or two items may be ``- test: name``
(``test.only``, ``test.skip``) and ``- tags: a, b``. Every other item is an interaction whose first key is the
utterance (see avsd.vdevice.assertions for what an assertion means). ``findReplace`` from testing.json is plain
string replacement in the raw YAML before parsing, as the runner does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from avsd.vdevice.assertions import (
    STRING_OPERATORS,
    Assertion,
    AssertionSyntaxError,
    Operator,
    clean_value,
)

PAUSE = "$PAUSE"
_VARIABLE = re.compile(r"\{[^}]+\}")


class SuiteError(ValueError):
    """A test file that cannot be read as a Bespoken YAML suite; the message says where."""


@dataclass(frozen=True, slots=True)
class Interaction:
    utterance: str
    assertions: tuple[Assertion, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    exit_after: bool = False

    @property
    def pause_s(self) -> float | None:
        """Seconds for a ``$PAUSE n`` interaction, else None."""
        if not self.utterance.startswith(PAUSE):
            return None
        try:
            return float(self.utterance[len(PAUSE) :].strip() or 0)
        except ValueError as exc:
            raise SuiteError(f"bad pause: {self.utterance!r}") from exc

    @property
    def phrases(self) -> list[str]:
        """STT hints: the expected prompt/transcript values of ``==`` / ``=~`` assertions, as the runner sends."""
        found: list[str] = []
        for a in self.assertions:
            if a.path not in ("prompt", "transcript") or a.operator not in (Operator.EQUALS, Operator.MATCHES):
                continue
            values = a.value if isinstance(a.value, list) else [a.value]
            found += [str(v) for v in values if v is not None and not _VARIABLE.search(str(v))]
        return found


@dataclass(frozen=True, slots=True)
class TestCase:
    name: str
    interactions: tuple[Interaction, ...]
    tags: tuple[str, ...] = ()
    only: bool = False
    skip: bool = False


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    configuration: Mapping[str, Any]
    tests: tuple[TestCase, ...]


def parse_suite(text: str, name: str, *, testing: Mapping[str, Any] | None = None) -> Suite:
    testing = testing or {}
    for old, new in (testing.get("findReplace") or {}).items():
        text = text.replace(str(old), str(new))
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise SuiteError(f"{name}: not valid YAML: {exc}") from exc
    configuration: dict[str, Any] = {k: v for k, v in testing.items() if k not in ("findReplace", "homophones")}
    if documents and isinstance(documents[0], dict) and "configuration" in documents[0]:
        if not isinstance(documents[0]["configuration"], dict):
            raise SuiteError(f"{name}: Configuration element is not an object")
        configuration.update(documents[0]["configuration"])
        documents = documents[1:]
    tests: list[TestCase] = []
    seen: dict[str, int] = {}
    for index, document in enumerate(documents, start=1):
        if not isinstance(document, list):
            continue
        test = _parse_test(document, index, name)
        if test.name in seen:
            seen[test.name] += 1
            test = TestCase(f"{test.name} ({seen[test.name]})", test.interactions, test.tags, test.only, test.skip)
        else:
            seen[test.name] = 1
        tests.append(test)
    return Suite(name, configuration, tuple(tests))


def _parse_test(items: list[Any], index: int, suite: str) -> TestCase:
    name, only, skip = f"Test {index}", False, False
    tags: tuple[str, ...] = ()
    interactions: list[Interaction] = []
    for position, item in enumerate(items):
        key = next(iter(item), None) if isinstance(item, dict) else None
        if position < 2 and key in ("test", "test.only", "test.skip"):
            name, only, skip = str(item[key]), key == "test.only", key == "test.skip"
            continue
        if position < 2 and key == "tags":
            tags = tuple(t.strip() for t in str(item[key]).split(",") if t.strip())
            continue
        try:
            interactions.append(_parse_interaction(item))
        except (AssertionSyntaxError, SuiteError) as exc:
            raise SuiteError(f"{suite}: test {name!r}: {exc}") from exc
    return TestCase(name, tuple(interactions), tags, only, skip)


def _parse_interaction(item: Any) -> Interaction:
    if isinstance(item, dict):
        utterance = str(next(iter(item)))
        elements = item[utterance]
        assertions: list[Assertion] = []
        settings: dict[str, Any] = {}
        exit_after = False
        if isinstance(elements, list):
            for element in elements:
                if isinstance(element, dict):
                    path = str(next(iter(element)))
                    if path.startswith("request.") or path.startswith("set "):
                        settings[path.removeprefix("set ").strip()] = element[path]
                    elif path in ("intent", "slots", "label"):
                        continue  # unit-test and goto syntax: not used by e2e virtual-device tests
                    else:
                        assertions.append(_object_assertion(path, element[path]))
                elif str(element).strip() == "exit":
                    exit_after = True
                else:
                    assertions.append(_string_assertion(str(element)))
        elif elements is not None:
            value = clean_value(elements) if isinstance(elements, str) else elements
            op = Operator.MATCHES if isinstance(value, str) and value.startswith("/") else Operator.EQUALS
            assertions.append(Assertion("prompt", op, value))
        return Interaction(utterance, tuple(assertions), settings, exit_after)
    text = str(item)
    op_text = _find_operator(text)
    if op_text is None:
        return Interaction(text.strip())
    utterance, _, value = text.partition(op_text)
    assertion = Assertion("prompt", Operator(op_text.strip()), _string_value(value), False)
    return Interaction(utterance.strip(), (assertion,))


def _object_assertion(path: str, value: Any) -> Assertion:
    cleaned = clean_value(value)
    op = Operator.EQUALS
    candidates = cleaned if isinstance(cleaned, list) else [cleaned]
    if any(isinstance(v, str) and v.startswith("/") for v in candidates):
        op = Operator.MATCHES
    assertion = Assertion(path.strip(), op, cleaned)
    assertion.validate()
    return assertion


def _string_assertion(text: str) -> Assertion:
    op_text = _find_operator(text)
    if op_text is None:
        raise SuiteError(f"Invalid assertion: {text}")
    path, _, value = text.partition(op_text)
    assertion = Assertion(path.strip(), Operator(op_text.strip()), _string_value(value), False)
    assertion.validate()
    return assertion


def _string_value(raw: str) -> Any:
    value = raw.strip()
    # "cardTitle != - Value1 - Value2": a YAML list the short syntax could not express.
    parts = [p.strip() for p in value.split(" - ")] if value.startswith("- ") else []
    if len(parts) > 1:
        return [clean_value(p.removeprefix("- ")) for p in parts]
    return clean_value(value)


def _find_operator(text: str) -> str | None:
    positions = [(text.find(op), op) for op in STRING_OPERATORS if op in text]
    return min(positions)[1] if positions else None
