"""Bespoken's YAML assertion semantics (skill-testing-ml ``Assertion.evaluate``), ported for ``avsd test``.

Pure: a parsed assertion and a result dict in, ``True``/``False`` out.

- ``:`` / ``==`` on a string is a *contains* test, not anchored: ``*`` becomes ``.*``; ``+ ^ $ ?`` are escaped;
  any other regex character (``.``, ``(``) is left as it is, as in the runner.
- A value starting with ``/`` is a regex ``/body/flags``; ``=~`` forces a regex.
- A list passes when any element matches; ``!=`` means "contains none of them".
- ``undefined`` is the absent value; ``>``, ``>=``, ``<``, ``<=`` compare integers (``parseInt``).
- ``prompt`` and ``transcript`` compare case-insensitively.
- ``lenientMode`` strips ``-\\f\\n\\r\\t\\v.()"',;:!?*^$`` and collapses spaces on both sides.
- Shorthand paths: ``prompt`` = transcript, ``cardTitle`` = card.mainTitle, ``cardContent`` = card.textField,
  ``cardImageURL`` = card.imageURL; anything else is a JSON path (``raw.messageBody.directives[0].namespace``,
  ``$.card.type``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

UNDEFINED: Any = None  # JSON null and a missing key are both "undefined" to the runner


class Operator(StrEnum):
    EQUALS = "=="
    MATCHES = "=~"
    NOT_EQUALS = "!="
    GREATER = ">"
    GREATER_EQUAL = ">="
    LESS = "<"
    LESS_EQUAL = "<="


NUMERIC = frozenset({Operator.GREATER, Operator.GREATER_EQUAL, Operator.LESS, Operator.LESS_EQUAL})
# Searched in this order so that ">=" is not read as ">" (the runner pads operators with spaces).
STRING_OPERATORS = (" == ", " =~ ", " != ", " >= ", " <= ", " > ", " < ")

SHORTHANDS = {
    "prompt": "transcript",
    "cardTitle": "card.mainTitle",
    "cardContent": "card.textField",
    "cardImageURL": "card.imageURL",
}
_IGNORE_CASE_PATHS = frozenset({"prompt", "transcript"})
_LENIENT_STRIP = re.compile(r"[-\f\n\r\t\v.()\"',;:!?*^$]")
_PATH_TOKEN = re.compile(r"\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]|([^.\[\]]+)")


class AssertionSyntaxError(ValueError):
    """A YAML assertion that the runner cannot read (bad operator, non-numeric value for > / <)."""


@dataclass(frozen=True, slots=True)
class Assertion:
    path: str
    operator: Operator
    value: Any  # str | int | float | list[...] | UNDEFINED
    shorthand_colon: bool = True  # written with ":" (regex-ness decided per value) rather than an operator

    def validate(self) -> None:
        if self.operator in NUMERIC and _int(self.value) is None:
            raise AssertionSyntaxError(f"Invalid expected value - must be numeric: {self.value}")


def clean_value(value: Any) -> Any:
    """The runner's ``Util.cleanValue``: ``undefined`` is absent, surrounding quotes go."""
    if isinstance(value, list):
        return [clean_value(v) for v in value]
    if isinstance(value, str):
        text = value.strip()
        if text == "undefined":
            return UNDEFINED
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            return text[1:-1]
        return text
    return value


def value_at_path(document: Any, path: str) -> Any:
    """Resolve a JSON path (``$.a.b[0]``, ``a.b[0].c``, ``a['b c']``) or a shorthand; UNDEFINED when absent."""
    path = SHORTHANDS.get(path, path)
    if path.startswith("$"):
        path = path[1:].lstrip(".")
    node = document
    for index, key, name in _PATH_TOKEN.findall(path):
        if index:
            if not isinstance(node, list) or int(index) >= len(node):
                return UNDEFINED
            node = node[int(index)]
        else:
            if not isinstance(node, dict):
                return UNDEFINED
            node = node.get(key or name, UNDEFINED)
        if node is UNDEFINED:
            return UNDEFINED
    return node


def evaluate(assertion: Assertion, result: dict[str, Any], *, lenient: bool = False) -> bool:
    actual = value_at_path(result, assertion.path)
    ignore_case = assertion.path in _IGNORE_CASE_PATHS
    expected = assertion.value
    op = assertion.operator
    if op in (Operator.EQUALS, Operator.MATCHES):
        if expected is UNDEFINED:
            return actual is UNDEFINED
        if actual is UNDEFINED:
            return False
        options = expected if isinstance(expected, list) else [expected]
        return any(_matches(assertion, str(v), actual, ignore_case, lenient) for v in options)
    if op in NUMERIC:
        have, want = _int(actual), _int(expected)
        if have is None or want is None:
            return False
        return {
            Operator.GREATER: have > want,
            Operator.GREATER_EQUAL: have >= want,
            Operator.LESS: have < want,
            Operator.LESS_EQUAL: have <= want,
        }[op]
    # NOT_EQUALS: "contains none of them"
    if expected is UNDEFINED:
        return actual is not UNDEFINED
    if actual is UNDEFINED:
        return True
    text = str(actual).lower() if ignore_case else str(actual)
    options = expected if isinstance(expected, list) else [expected]
    return not any((str(v).lower() if ignore_case else str(v)) in text for v in options)


def _matches(assertion: Assertion, expected: str, actual: Any, ignore_case: bool, lenient: bool) -> bool:
    # The runner's evaluateRegexOrString: with ":" each value decides (a "/" makes it a regex, and so does an
    # "=~" that a "/" anywhere in a list implied); with a written operator, the operator decides.
    as_regex = assertion.operator is Operator.MATCHES
    if assertion.shorthand_colon:
        as_regex = as_regex or expected.startswith("/")
    text = actual if isinstance(actual, str) else _js_string(actual)
    if as_regex:
        return _regex_match(expected, text, ignore_case)
    if lenient:
        pattern = _lenient(expected)
        text = _lenient(text)
    else:
        pattern = ".*".join(expected.strip().split("*"))
        for char in "+^$?":
            pattern = pattern.replace(char, "\\" + char)
    try:
        return re.search(pattern, text, re.IGNORECASE if ignore_case else 0) is not None
    except re.error:
        # JavaScript would throw on e.g. an unbalanced "("; a plain "contains" is the useful reading.
        return (pattern.lower() in text.lower()) if ignore_case else pattern in text


def _regex_match(expected: str, text: str, ignore_case: bool) -> bool:
    body, flags = expected, ""
    if body.startswith("/"):
        body = body[1:]
        end = body.rfind("/")
        if end >= 0:
            body, flags = body[:end], body[end + 1 :]
    re_flags = 0
    if ignore_case or "i" in flags:
        re_flags |= re.IGNORECASE
    if "m" in flags:
        re_flags |= re.MULTILINE
    if "s" in flags:
        re_flags |= re.DOTALL
    try:
        return re.search(body, text, re_flags) is not None
    except re.error as exc:
        raise AssertionSyntaxError(f"invalid regular expression {expected!r}: {exc}") from exc


def _lenient(value: str) -> str:
    return re.sub(r"  +", " ", _LENIENT_STRIP.sub(" ", value)).strip()


def _js_string(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _int(value: Any) -> int | None:
    match = re.match(r"\s*([-+]?\d+)", str(value)) if value is not UNDEFINED else None
    return int(match.group(1)) if match else None
