"""The one back-off: a table of waits, each randomised by a jitter factor. Pure (the caller sleeps).

Every retry loop in avsd asks a :class:`Backoff` how long to wait: the AVS reconnect (the SDK's table,
protocol reference §3.5), the certified outbox, the capabilities publisher, the microphone re-open. Two shapes:

- ``Backoff(table)``: attempt n waits ``table[min(n, len - 1)]``, i.e. it stays at the last value;
- ``Backoff.exponential(initial, maximum)``: initial, 2x, 4x ... capped at ``maximum``.

Jitter multiplies each wait by a uniform factor in ``jitter`` (``(1.0, 1.0)``: none), so a fleet of devices
that lost the same server does not come back in lock-step. A table must be non-empty, finite and
non-negative: a negative wait once made a retry loop spin so tightly that SIGTERM waited 5 s.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

# avs-device-sdk TransportDefines: attempt n waits table[min(n, 5)], stays at ~20 s thereafter.
RECONNECT_TABLE_S: tuple[float, ...] = (0.25, 1.0, 3.0, 5.0, 10.0, 20.0)
JITTER = (0.66, 1.5)
NO_JITTER = (1.0, 1.0)


class Backoff:
    """Yields the wait before each retry; ``reset()`` after an attempt succeeded (or a connection proved stable)."""

    def __init__(
        self,
        table: Sequence[float] = RECONNECT_TABLE_S,
        *,
        jitter: tuple[float, float] = JITTER,
        rng: random.Random | None = None,
    ) -> None:
        if not table:
            raise ValueError("back-off table is empty")
        if any(not math.isfinite(t) or t < 0 for t in table):
            raise ValueError(f"back-off waits must be finite and >= 0, got {list(table)}")
        low, high = jitter
        if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high):
            raise ValueError(f"bad jitter range {jitter}")
        self._table = tuple(table)
        self._jitter = jitter
        self._rng = rng or random.Random()
        self.attempt = 0

    @classmethod
    def exponential(
        cls,
        initial_s: float,
        maximum_s: float,
        *,
        jitter: tuple[float, float] = NO_JITTER,
        rng: random.Random | None = None,
    ) -> Backoff:
        """``initial_s``, doubling each attempt, never above ``maximum_s`` (a zero ``initial_s`` waits 0 once)."""
        if not (math.isfinite(initial_s) and math.isfinite(maximum_s)) or initial_s < 0 or maximum_s < 0:
            raise ValueError(f"back-off bounds must be finite and >= 0, got {initial_s}, {maximum_s}")
        table = [min(initial_s, maximum_s)]
        while 0 < table[-1] < maximum_s:
            table.append(min(table[-1] * 2, maximum_s))
        if table[-1] < maximum_s:  # initial 0: 0, then straight to the cap
            table.append(maximum_s)
        return cls(table, jitter=jitter, rng=rng)

    def peek(self) -> float:
        """The un-jittered wait the next :meth:`next_delay` is based on (for log lines)."""
        return self._table[min(self.attempt, len(self._table) - 1)]

    def next_delay(self) -> float:
        base = self.peek()
        self.attempt += 1
        low, high = self._jitter
        # Capped at the table's last value x the high jitter, so a long outage never waits longer than ~30 s.
        return base * self._rng.uniform(low, high) if high > low else base * low

    def reset(self) -> None:
        self.attempt = 0
