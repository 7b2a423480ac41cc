"""glibc's heap, for an always-on appliance with little memory: few malloc arenas, freed pages given back.

glibc gives each thread that allocates its own arena (up to 8 per core), and an arena keeps what it once held.
The daemon's threads (speech-to-text, TTS, playback, the capture thread) each held a few MiB after one turn:
``avsd run`` with the offline assistant, after it heard and answered one command, 162.8 MiB with glibc's default,
152.4 MiB with 2 arenas, 151.7 MiB with 1 (bench_assistant's RSS run). Every call is a no-op where there is no
glibc (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

DAEMON_MALLOC_ARENAS = 2  # not 1: the capture thread must not wait for the decoder's allocations
_M_ARENA_MAX = -8  # mallopt() parameter, from glibc's malloc.h


def _glibc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:  # pragma: no cover - no C library by that name
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _glibc()


def limit_malloc_arenas(count: int = DAEMON_MALLOC_ARENAS) -> bool:
    """At most ``count`` malloc arenas for threads started from now on (call before they start). Whether set."""
    return bool(_LIBC is not None and _LIBC.mallopt(_M_ARENA_MAX, count) == 1)


def give_back_free_memory() -> None:
    """malloc_trim(0): the heap pages that are free go back to the system."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
