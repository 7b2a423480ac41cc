"""openWakeWord via pyopen-wakeword: mel + embedding front end and a small classifier, on 80 ms chunks.

About 30x the CPU of microWakeWord (the shared front end dominates), but it catches more of the real-world
"Alexa"s that microWakeWord misses, which is why the default ``cascade`` runs it whenever there is speech.
10 ms frames are gathered into 80 ms chunks, the step of its front end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from avsd.errors import WakeWordError
from avsd.wake.base import builtin_model, require
from avsd.wake.scored import Scorer

_CHUNK_BYTES = 1280 * 2  # 80 ms


class OpenWakeWordScorer(Scorer):
    name = "openwakeword"
    default_threshold = 0.5
    # bench_wake: gated, it woke 4 times in 32 min of near misses ("a lexus", "Alexander") at 0.5, none at 0.9;
    # with the agreement rule the cascade loses no real detection for it.
    cascade_threshold = 0.9
    default_playback_threshold = 0.9
    default_agree_threshold = 0.1

    def __init__(self, keyword: str) -> None:
        require("pyopen_wakeword", "pyopen-wakeword")
        from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures

        model = builtin_model(Model, keyword, "openWakeWord")
        try:
            self._model: Any = OpenWakeWord.from_builtin(model)
            self._features: Any = OpenWakeWordFeatures.from_builtin()
        except (OSError, ValueError) as exc:
            raise WakeWordError(f"openWakeWord could not load its models: {exc}") from exc
        self._pending = bytearray()

    def score(self, frame: bytes, levels: Sequence[float], end_index: int) -> float | None:
        self._pending += frame
        if len(self._pending) < _CHUNK_BYTES:
            return None
        whole = len(self._pending) - len(self._pending) % _CHUNK_BYTES
        chunk = bytes(self._pending[:whole])
        del self._pending[:whole]
        return self.score_chunk(chunk)

    def score_chunk(self, chunk: bytes) -> float | None:
        """Run any amount of audio through the model; the highest probability produced, if any."""
        best: float | None = None
        for embedding in self._features.process_streaming(chunk):
            for prob in self._model.process_streaming(embedding):
                if best is None or prob > best:
                    best = float(prob)
        return best

    def reset(self) -> None:
        self._pending.clear()
        self._model.reset()
        self._features.reset()

    def close(self) -> None:
        self._model.close()
        self._features.close()
