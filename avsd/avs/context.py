"""Context providers: every capability agent contributes its component state to Recognize and SynchronizeState."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

_LOGGER = logging.getLogger(__name__)

ContextProvider = Callable[[], Mapping[str, Any] | None]


class ContextRegistry:
    """Gathers one context entry per registered provider, in registration order (§5.2)."""

    def __init__(self) -> None:
        self._providers: list[ContextProvider] = []

    def register(self, provider: ContextProvider) -> None:
        self._providers.append(provider)

    def gather(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for provider in self._providers:
            try:
                entry = provider()
            except Exception:
                # One broken agent must not stop the device from talking to AVS.
                _LOGGER.exception("context provider %r failed", provider)
                continue
            if entry is not None:
                entries.append(dict(entry))
        return entries
