"""The ``none`` engine: never detects (push-to-talk / button only)."""

from __future__ import annotations

from avsd.wake.base import Detection


class NullEngine:
    name = "none"

    def process(self, frame: bytes, end_index: int) -> Detection | None:
        return None

    def reset(self) -> None:
        pass

    def set_sensitivity_boost(self, boosted: bool) -> None:
        pass

    def close(self) -> None:
        pass
