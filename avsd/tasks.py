"""Tasks a component owns: kept until done, failures logged, all cancelled and awaited on close.

The one task set: before it, five components kept ``set[asyncio.Task]`` by hand (add, ``add_done_callback(discard)``)
and silently dropped the exceptions of the tasks that failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class TaskSet:
    def __init__(self, logger: logging.Logger, prefix: str = "") -> None:
        self._logger = logger
        self._prefix = prefix
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        """The tasks not yet done (a snapshot: spawning or finishing while iterating is safe)."""
        return iter(list(self._tasks))

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self._prefix}{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def cancel_all(self) -> None:
        """Cancel every task (except the caller's own) and wait until they have finished."""
        current = asyncio.current_task()
        pending = [task for task in self._tasks if task is not current]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def wait_all(self) -> None:
        """Wait for every task to finish by itself."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
