"""avsd: a headless Alexa Voice Service appliance daemon for the Raspberry Pi, and a client library.

``avsd.Client`` / ``avsd.AsyncClient`` (see docs/library.md) are imported on first use, so ``import avsd`` stays
cheap for the daemon's command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from avsd.client import AsyncClient, Client, Reply, ReplyDirective

_LAZY = {"AsyncClient", "Client", "Reply", "ReplyDirective"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from avsd import client

        return getattr(client, name)
    raise AttributeError(f"module 'avsd' has no attribute {name!r}")


__all__ = ["AsyncClient", "Client", "Reply", "ReplyDirective", "__version__"]
