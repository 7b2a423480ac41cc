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
# The streaming state of pyopen-wakeword's front end and classifier (pyopen-wakeword 1.1), saved once after
# warm-up and restored by reset(): see OpenWakeWordScorer.__init__.
_FEATURES_STATE = ("audio", "new_audio_samples", "mels", "new_mels")
_MODEL_STATE = ("embeddings", "new_embeddings")


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
        # pyopen-wakeword starts, and restarts in its reset(), by running 8 s of zeros through its front end: one
        # call of ~300 ms on this Xeon (seconds on a Pi 3). avsd resets the wake stage after every dialog, on the
        # event loop, so that call stalled the loop exactly when the reply was due (the offline assistant's
        # answer came ~300 ms late). Pay it once here and keep the warmed-up state; reset() restores a copy,
        # which is where the library's reset lands after one chunk of silence.
        self.score_chunk(bytes(_CHUNK_BYTES))
        self._warm_state = self._state()

    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return (
            {name: _copied(getattr(self._features, name)) for name in _FEATURES_STATE},
            {name: _copied(getattr(self._model, name)) for name in _MODEL_STATE},
        )

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
        features, model = self._warm_state
        for name, value in features.items():
            setattr(self._features, name, _copied(value))
        for name, value in model.items():
            setattr(self._model, name, _copied(value))

    def close(self) -> None:
        self._model.close()
        self._features.close()


def _copied(value: Any) -> Any:
    return value.copy() if hasattr(value, "copy") else value
