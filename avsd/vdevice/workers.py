"""``avsd vdevice --workers N``: N server processes answering on one listening socket.

The parent binds the socket (so ``--port 0`` names one port for all) and spawns the workers with it; the kernel
hands each new connection to whichever worker accepts it first. Nothing a second worker needs lives in memory:
conversations, results and audio are in the shared SQLite store (WAL), so any worker answers ``/conversation``
for an async conversation another one runs, and ``/conversation_stop`` reaches it through the store.

Workers are ``spawn``ed (a fresh interpreter, never a fork of the parent's running event loop). When a worker
ends on its own the parent stops the others and exits 1 (78 if the worker's exit was a configuration error):
one supervisor, systemd's ``Restart=on-failure``, restarts the whole service, and worker 0 of the new start
resumes the unfinished async conversations (only worker 0 does, so no conversation runs twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import Any

_log = logging.getLogger(__name__)

MAX_WORKERS = 64
_EXIT_FAILURE, _EXIT_CONFIG = 1, 78
_STOP_GRACE_S = 10.0


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """Which of the N workers this process is."""

    index: int
    count: int

    @property
    def resumes_conversations(self) -> bool:
        return self.index == 0


def exit_code_after(worker_exit: int | None) -> int:
    """The parent's exit code when a worker ended by itself (pure)."""
    return _EXIT_CONFIG if worker_exit == _EXIT_CONFIG else _EXIT_FAILURE


async def supervise(
    count: int, target: Callable[..., None], target_args: Sequence[Any], on_ready: Callable[[], None]
) -> int:
    """Run ``target(role, ready_event, *target_args)`` in ``count`` processes until a signal (-> 0) or until
    one of them ends (-> the others are stopped, exit_code_after)."""
    context = multiprocessing.get_context("spawn")
    readies = [context.Event() for _ in range(count)]
    workers = [
        context.Process(target=target, args=(WorkerRole(i, count), readies[i], *target_args), name=f"vdevice-{i}")
        for i in range(count)
    ]
    for worker in workers:
        worker.start()
    try:
        ended = await _first_exit_before_ready(workers, readies)
        if ended is not None:
            return _report_exit(ended)
        on_ready()
        ended = await _first_exit_or_signal(workers)
        return 0 if ended is None else _report_exit(ended)
    finally:
        await _stop(workers)


async def _first_exit_before_ready(workers: Sequence[BaseProcess], readies: Sequence[Event]) -> BaseProcess | None:
    while not all(ready.is_set() for ready in readies):
        for worker in workers:
            if worker.exitcode is not None:
                return worker
        await asyncio.sleep(0.05)
    return None


async def _first_exit_or_signal(workers: Sequence[BaseProcess]) -> BaseProcess | None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[BaseProcess | None] = loop.create_future()

    def finish(result: BaseProcess | None) -> None:
        if not done.done():
            done.set_result(result)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, finish, None)
    for worker in workers:  # a process's sentinel becomes readable when it ends
        loop.add_reader(worker.sentinel, finish, worker)
    try:
        return await done
    finally:
        for worker in workers:
            loop.remove_reader(worker.sentinel)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _report_exit(worker: BaseProcess) -> int:
    worker.join()
    _log.error("vdevice worker %s (pid %s) exited with code %s: stopping the others", worker.name, worker.pid,
               worker.exitcode)
    return exit_code_after(worker.exitcode)


async def _stop(workers: Sequence[BaseProcess]) -> None:
    """SIGTERM (each worker closes its server, sessions and store), then SIGKILL after a grace period."""
    for worker in workers:
        if worker.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.terminate()
    for worker in workers:
        await asyncio.to_thread(worker.join, _STOP_GRACE_S)
        if worker.exitcode is None:
            _log.warning("vdevice worker %s did not stop in %.0f s: killing it", worker.name, _STOP_GRACE_S)
            worker.kill()
            await asyncio.to_thread(worker.join)
