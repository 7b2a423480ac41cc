"""Fault injection for the emulator: what can go wrong, and on which request it goes wrong.

A :class:`Fault` is armed with ``Emulator.inject`` (or a scenario ``fault = ...``) and consumed by the next
request it applies to (``count`` times). Connection-wide faults (GOAWAY, close downchannel, expire tokens) act
at once on every open connection. Pure data plus the selection logic; the server does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from avsd.errors import ConfigError


class FaultKind(StrEnum):
    CLOSE_DOWNCHANNEL = "close_downchannel"  # end the downchannel stream cleanly (END_STREAM)
    GOAWAY = "goaway"  # GOAWAY on every open connection, close once streams finish (or after a grace)
    RST_STREAM = "rst_stream"  # RST_STREAM on the next target stream (event, or the downchannel at once)
    STATUS = "status"  # answer the next target request with ``status`` and the matching exception body
    STALL = "stall"  # hold the next event response ``seconds`` before the headers
    TRICKLE = "trickle"  # send the next event response ``chunk_bytes`` every ``interval_ms``
    MALFORMED_MULTIPART = "malformed_multipart"  # next event response / next downchannel push is broken MIME
    MALFORMED_JSON = "malformed_json"  # next directive JSON (event response or downchannel) is not JSON
    EXPIRE_TOKENS = "expire_tokens"  # every access token issued so far becomes invalid
    NO_PING_ANSWER = "no_ping_answer"  # the next /ping never gets an answer
    OFFLINE = "offline"  # drop every connection and refuse new ones for ``seconds`` (the network is gone)


class FaultTarget(StrEnum):
    EVENT = "event"
    DOWNCHANNEL = "downchannel"
    PING = "ping"


# Faults that act immediately when injected instead of waiting for a request.
IMMEDIATE_KINDS = frozenset(
    {FaultKind.CLOSE_DOWNCHANNEL, FaultKind.GOAWAY, FaultKind.EXPIRE_TOKENS, FaultKind.OFFLINE}
)

# AVS exception codes per status (protocol reference §9.1).
EXCEPTION_CODES: Mapping[int, str] = {
    400: "INVALID_REQUEST_EXCEPTION",
    403: "UNAUTHORIZED_REQUEST_EXCEPTION",
    429: "THROTTLING_EXCEPTION",
    500: "INTERNAL_SERVICE_EXCEPTION",
    503: "N/A",
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault. ``match`` ("Ns.Name" or "*") narrows EVENT-targeted faults to one event kind."""

    kind: FaultKind
    target: FaultTarget = FaultTarget.EVENT
    status: int = 500
    seconds: float = 5.0
    chunk_bytes: int = 64
    interval_ms: float = 50.0
    count: int = 1
    match: str = "*"

    def __post_init__(self) -> None:
        if self.kind is FaultKind.STATUS and not 400 <= self.status <= 599:
            raise ValueError(f"fault status must be 4xx/5xx, not {self.status}")
        if self.kind is FaultKind.NO_PING_ANSWER and self.target is not FaultTarget.PING:
            object.__setattr__(self, "target", FaultTarget.PING)
        if self.count < 1 or self.chunk_bytes < 1 or self.seconds < 0 or self.interval_ms < 0:
            raise ValueError("fault count/chunk_bytes must be >= 1 and seconds/interval_ms >= 0")

    @property
    def immediate(self) -> bool:
        return self.kind in IMMEDIATE_KINDS or (
            self.kind is FaultKind.RST_STREAM and self.target is FaultTarget.DOWNCHANNEL
        )

    def applies_to(self, target: FaultTarget, qualified_name: str | None = None) -> bool:
        if self.target is not target:
            return False
        return self.match == "*" or qualified_name is None or matches(self.match, qualified_name)


def matches(pattern: str, qualified_name: str) -> bool:
    """``*`` matches all; ``Ns.*`` a namespace; otherwise exact ``Ns.Name``."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return qualified_name.startswith(pattern[:-1])
    return pattern == qualified_name


def fault_from_obj(obj: str | Mapping[str, Any], key: str = "fault") -> Fault:
    """A fault from a scenario value: ``"goaway"`` or ``{kind = "status", status = 503, target = "ping"}``."""
    try:
        if isinstance(obj, str):
            return Fault(FaultKind(obj))
        if not isinstance(obj, Mapping):
            raise ConfigError(key, "must be a fault name or a table")
        fields: dict[str, Any] = dict(obj)
        kind = FaultKind(fields.pop("kind"))
        target = FaultTarget(fields.pop("target", FaultTarget.EVENT))
        unknown = set(fields) - {"status", "seconds", "chunk_bytes", "interval_ms", "count", "match"}
        if unknown:
            raise ConfigError(key, f"unknown fault keys {sorted(unknown)}")
        return Fault(kind, target, **fields)
    except KeyError as exc:
        raise ConfigError(key, f"missing {exc}") from exc
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(key, str(exc)) from exc


@dataclass(slots=True)
class FaultBook:
    """Armed per-request faults; ``take`` consumes one use of the first that applies."""

    armed: list[tuple[Fault, int]] = field(default_factory=list)

    def arm(self, fault: Fault) -> None:
        self.armed.append((fault, fault.count))

    def take(
        self,
        target: FaultTarget,
        qualified_name: str | None = None,
        kinds: frozenset[FaultKind] | None = None,
    ) -> Fault | None:
        for index, (fault, left) in enumerate(self.armed):
            if fault.applies_to(target, qualified_name) and (kinds is None or fault.kind in kinds):
                if left <= 1:
                    del self.armed[index]
                else:
                    self.armed[index] = (fault, left - 1)
                return fault
        return None

    def peek(self, target: FaultTarget) -> bool:
        return any(f.target is target for f, _ in self.armed)
