"""Homophones with Bespoken's exact semantics (virtual-device-sdk ``VirtualDevice.applyHomophones``).

Speech-to-text of the reply cannot know that "tess" was "test"; a test suite lists the words its STT confuses.
The rules, as the SDK applies them:

- keys run in insertion order; in a key every ``_`` is a space (env-style keys like ``are_really_good``);
- each homophone (trimmed) replaces whole-word occurrences, bounded by whitespace, ``, . : ; " '`` or the ends of
  the string, case-insensitively, by the key in its own case;
- the homophone is NOT regex-escaped (a ``.`` in it is a wildcard, as in the SDK);
- rules chain: a later rule sees the output of an earlier one;
- the raw transcript is kept (``debug.rawTranscript``) and an empty transcript is left alone.

JavaScript's variable-width look-behind ``(?<=[\\s,.:;"']|^)`` is written as an alternation for Python's ``re``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

_log = logging.getLogger(__name__)

Homophones = Sequence[tuple[str, Sequence[str]]]

_BEFORE = r"(?:(?<=[\s,.:;\"'])|^)"
_AFTER = r"(?=[\s,.:;\"']|$)"


def homophone_rules(mapping: Mapping[str, Iterable[str]] | Iterable[tuple[str, Iterable[str]]]) -> Homophones:
    """Normalise ``{"word": ["h1", "h2"]}`` (insertion order kept) to a rule list."""
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    return [(str(word), [str(h) for h in homophones]) for word, homophones in items]


def apply_homophones(transcript: str, rules: Homophones) -> str:
    """Return ``transcript`` with every rule applied in order (see the module docstring)."""
    text = transcript
    if not text:
        return text
    for key, homophones in rules:
        word = key.replace("_", " ")
        for homophone in homophones:
            pattern = homophone.strip()
            if not pattern:
                continue
            try:
                regex = re.compile(_BEFORE + pattern + _AFTER, re.IGNORECASE)
            except re.error:
                # Not escaped on purpose (SDK semantics), so a stray "(" must not break a whole test run.
                _log.warning("homophone %r for %r is not a valid pattern; matched literally", pattern, word)
                regex = re.compile(_BEFORE + re.escape(pattern) + _AFTER, re.IGNORECASE)
            text = regex.sub(_literal(word), text)
    return text


def merge_rules(*rule_sets: Homophones) -> Homophones:
    """Concatenate rule sets; earlier sets run first (config, then per-token, then per-request)."""
    merged: list[tuple[str, Sequence[str]]] = []
    for rules in rule_sets:
        merged.extend(rules)
    return merged


def _literal(word: str) -> Callable[[re.Match[str]], str]:
    """A replacement that is taken as it is (``re.sub`` would read backslashes in a plain string)."""
    return lambda _match: word
