"""Phrase hints for free-text speech-to-text: a window of the transcript that sounds like an expected phrase
becomes that phrase (what Google's "speech contexts" do for Bespoken; pocketsphinx has no such bias).

Pure. A phrase matches a run of transcript words of about its length whose letters are >= ``cutoff`` similar
(difflib ratio), so "the a v s d emulate her" still yields "emulator" for the hint "emulator" only when the words
are close; unrelated words are never touched. ``*`` wildcards in a phrase split it into separate hints.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

DEFAULT_CUTOFF = 0.8


def apply_phrase_hints(transcript: str, phrases: Sequence[str], *, cutoff: float = DEFAULT_CUTOFF) -> str:
    words = transcript.split()
    if not words:
        return transcript
    for phrase in _hint_parts(phrases):
        target = phrase.lower()
        size = len(target.split())
        best: tuple[float, int, int] | None = None
        for width in {max(1, size - 1), size, size + 1}:
            for start in range(0, max(0, len(words) - width) + 1):
                window = " ".join(words[start : start + width]).lower()
                score = difflib.SequenceMatcher(None, window, target).ratio()
                if score >= cutoff and (best is None or score > best[0]):
                    best = (score, start, width)
        if best is not None and best[0] < 1.0:
            _, start, width = best
            words[start : start + width] = phrase.split()
    return " ".join(words)


def _hint_parts(phrases: Sequence[str]) -> list[str]:
    parts: list[str] = []
    for phrase in phrases:
        if phrase.startswith("/"):
            continue  # a regex is not something a speaker says
        parts += [p.strip() for p in phrase.split("*") if len(p.strip()) >= 3]
    return parts
