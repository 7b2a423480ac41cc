"""Child processes that end with their parent, even when the parent is killed (SIGKILL, the OOM killer) and
has no chance to stop them: otherwise they stay behind, holding memory (a loaded decoder: ~170 MB) or a port."""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def end_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Call first thing in a multiprocessing child: the kernel sends it ``sig`` when its parent ends (Linux's
    PR_SET_PDEATHSIG; elsewhere nothing). If the parent is already gone, the signal is sent now."""
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return
    parent_pid = parent.pid
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:  # it ended before prctl: the kernel will not send the signal
        os.kill(os.getpid(), sig)
