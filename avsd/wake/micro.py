"""microWakeWord via pymicro-wakeword: a small streaming TFLite model on 10 ms features (~0.2 % of a core)."""

from __future__ import annotations

from typing import Any

from avsd.errors import WakeWordError
from avsd.wake.base import WakeSettings, require
from avsd.wake.scored import ScoredEngine


class MicroEngine(ScoredEngine):
    name = "micro"
    # The model's own cutoff (alexa.json: probability_cutoff 0.9) over its 5-step sliding mean.
    default_threshold = 0.9
    default_playback_threshold = 0.97

    def __init__(self, settings: WakeSettings) -> None:
        require("pymicro_wakeword", "pymicro-wakeword")
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        try:
            model = Model(settings.keyword.lower().replace(" ", "_"))
        except ValueError as exc:
            choices = ", ".join(m.value for m in Model)
            raise WakeWordError(
                f"microWakeWord has no built-in {settings.keyword!r} model ({choices})"
            ) from exc
        try:
            self._model: Any = MicroWakeWord.from_builtin(model)
            self._features: Any = MicroWakeWordFeatures()
        except (OSError, ValueError) as exc:  # missing/incompatible libtensorflowlite_c
            raise WakeWordError(f"microWakeWord could not load its model: {exc}") from exc
        super().__init__(settings)

    def _score(self, frame: bytes) -> float | None:
        best: float | None = None
        for features in self._features.process_streaming(frame):
            prob = self._model.process_streaming_prob(features)
            if prob is not None and (best is None or prob > best):
                best = float(prob)
        return best

    def _reset_model(self) -> None:
        self._model.reset()
        self._features.reset()

    def _close_model(self) -> None:
        self._model.close()
