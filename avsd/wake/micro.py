"""microWakeWord via pymicro-wakeword: a small streaming TFLite model on 10 ms features.

pymicro-wakeword's own streaming helpers spend far more time in Python than in the model (per 10 ms feature: a
numpy array, a concatenate, a quantise, ctypes calls; per inference a ``statistics.mean`` over Fractions). The
model itself runs in about 10 us. :class:`LeanStream` feeds the same model with the same arithmetic, a block at a
time: features for the whole block, one quantise and one TFLite invoke per model stride, a float mean.
"""

from __future__ import annotations

import ctypes
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from avsd.errors import WakeWordError
from avsd.wake.base import builtin_model, require
from avsd.wake.scored import Scorer


class MicroScorer(Scorer):
    name = "micro"
    # The model's own cutoff (alexa.json: probability_cutoff 0.9) over its 5-step sliding mean.
    default_threshold = 0.9
    cascade_threshold = 0.7  # bench_wake: no false wake in 32 min of non-wake speech down to 0.7 (one at 0.5)
    default_playback_threshold = 0.97
    default_agree_threshold = 0.3

    def __init__(self, keyword: str) -> None:
        require("pymicro_wakeword", "pymicro-wakeword")
        from pymicro_wakeword import MicroWakeWord, Model

        model = builtin_model(Model, keyword, "microWakeWord")
        try:
            self._model: Any = MicroWakeWord.from_builtin(model)
        except (OSError, ValueError) as exc:  # missing/incompatible libtensorflowlite_c
            raise WakeWordError(f"microWakeWord could not load its model: {exc}") from exc
        self._stream = LeanStream(self._model)

    def score(self, frame: bytes, levels: Sequence[float], end_index: int) -> float | None:
        return self._stream.process(frame)

    def reset(self) -> None:
        self._model.reset()  # reloads the interpreter: the model's internal streaming state starts clean
        self._stream = LeanStream(self._model)

    def close(self) -> None:
        self._model.close()


class LeanStream:
    """Streaming inference over a loaded ``pymicro_wakeword.MicroWakeWord`` (its interpreter and tensors)."""

    _CHUNK_BYTES = 320  # the frontend consumes 10 ms at a time

    def __init__(self, model: Any) -> None:
        from pymicro_features import MicroFrontend

        self._model = model
        self._frontend = MicroFrontend()
        self._audio = b""
        self._pending: list[list[float]] = []
        self._probabilities: deque[float] = deque(maxlen=model.sliding_window_size)
        self._in_zero = model.input_zero_point
        self._out_scale = model.output_scale
        self._out_zero = model.output_zero_point
        self._in_dtype = model.input_dtype
        size = model.lib.TfLiteTensorByteSize(model.output_tensor)
        self._output = np.empty(size // np.dtype(model.output_dtype).itemsize, dtype=model.output_dtype)
        self._output_ptr = self._output.ctypes.data_as(ctypes.c_void_p)

    def process(self, audio: bytes) -> float | None:
        """Feed any amount of audio; return the highest sliding-mean probability produced, if any."""
        data = self._audio + audio if self._audio else audio
        offset, best = 0, None
        frontend, stride = self._frontend, self._model.stride
        while offset + self._CHUNK_BYTES <= len(data):
            result = frontend.process_samples(data[offset : offset + self._CHUNK_BYTES])
            offset += result.samples_read * 2
            if not result.features:
                continue
            self._pending.append(result.features)
            if len(self._pending) == stride:
                prob = self._infer()
                if prob is not None and (best is None or prob > best):
                    best = prob
        self._audio = data[offset:]
        return best

    def _infer(self) -> float | None:
        model = self._model
        features = np.asarray(self._pending, dtype=np.float64).reshape(1, len(self._pending), -1)
        self._pending = []
        quantised = np.round(features / self._model.input_scale + self._in_zero).astype(self._in_dtype)
        lib = model.lib
        lib.TfLiteTensorCopyFromBuffer(model.input_tensor, quantised.ctypes.data_as(ctypes.c_void_p), quantised.nbytes)
        lib.TfLiteInterpreterInvoke(model.interpreter)
        lib.TfLiteTensorCopyToBuffer(model.output_tensor, self._output_ptr, self._output.nbytes)
        self._probabilities.append((float(self._output[0]) - self._out_zero) * self._out_scale)
        if len(self._probabilities) < self._probabilities.maxlen:  # type: ignore[operator]
            return 0.0
        return sum(self._probabilities) / len(self._probabilities)
