"""Reconnect back-off (protocol reference §3.5): the SDK's table, each value randomised to 66-150 %. Pure."""

from __future__ import annotations

import random
from collections.abc import Sequence

# avs-device-sdk TransportDefines: attempt n waits table[min(n, 5)], stays at ~20 s thereafter.
RECONNECT_TABLE_S: tuple[float, ...] = (0.25, 1.0, 3.0, 5.0, 10.0, 20.0)
JITTER = (0.66, 1.5)


class Backoff:
    """Yields the wait before each retry; ``reset()`` after a connection proved stable."""

    def __init__(
        self,
        table: Sequence[float] = RECONNECT_TABLE_S,
        *,
        jitter: tuple[float, float] = JITTER,
        rng: random.Random | None = None,
    ) -> None:
        if not table:
            raise ValueError("back-off table is empty")
        self._table = tuple(table)
        self._jitter = jitter
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        base = self._table[min(self.attempt, len(self._table) - 1)]
        self.attempt += 1
        low, high = self._jitter
        # Capped at the table's last value x the high jitter, so a long outage never waits longer than ~30 s.
        return base * self._rng.uniform(low, high)

    def reset(self) -> None:
        self.attempt = 0
