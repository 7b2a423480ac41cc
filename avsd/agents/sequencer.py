"""Directive sequencing by ``dialogRequestId`` (protocol reference §8). Async, transport-free.

Directives arrive from the downchannel and from event responses through ``submit()``; the sequencer decides
when each reaches its handler:

- a directive whose ``dialogRequestId`` is not the current one is dropped (DEBUG log, no exception event) —
  including when no dialog has started yet, as the SDK does (``DirectiveProcessor::onDirective``);
- a directive *without* one is handed to its handler at once (never queued behind a blocking Speak);
- directives of the current dialog are handed over in arrival order, and a *blocking* one (Speak) must finish
  before the next is handed over, so ``[Speak, Speak, ExpectSpeech]`` speaks twice and then opens the mic;
- every handler has its own lane and runs one directive at a time, in the order it was handed them;
- a new dialog cancels (``handler.cancel()``) every queued directive of the old one and the running one; a
  running ``handle()`` still busy ``cancel_grace_s`` after ``cancel()`` is cancelled as a task;
- when a directive of a dialog fails, the rest of that dialog is scrubbed as well (SDK
  ``scrubDialogRequestIdLocked``; setting ``scrub_dialog_on_failure``).

Errors are reported with ``System.ExceptionEncountered`` through ``on_exception`` (§9.3): unknown directive ->
UNSUPPORTED_OPERATION, ``DirectiveParseError`` -> UNEXPECTED_INFORMATION_RECEIVED, anything else ->
INTERNAL_ERROR. The sequencer logs and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

from avsd.avs.messages import Directive, Event, ExceptionErrorType, exception_encountered
from avsd.errors import DirectiveParseError
from avsd.tasks import TaskSet

log = logging.getLogger(__name__)


class DirectiveHandler(Protocol):
    def handles(self) -> Collection[tuple[str, str]]:
        """The (namespace, name) pairs this handler takes."""
        ...

    def blocking(self, directive: Directive) -> bool:
        """True when later directives of the same dialog must wait for this one (Speak)."""
        ...

    async def handle(self, directive: Directive) -> None:
        """Carry the directive out; for a blocking one, return when it is finished. May raise
        DirectiveParseError for a bad payload."""
        ...

    async def cancel(self, directive: Directive) -> None:
        """The directive's dialog was superseded, before or while it was handled: stop or forget it."""
        ...


@dataclass(frozen=True, slots=True)
class SequencerSettings:
    queue_size: int = field(
        default=64,
        metadata={"help": "directives waiting per lane before new ones are dropped", "min": 4, "max": 4096},
    )
    cancel_grace_s: float = field(
        default=2.0,
        metadata={
            "help": "seconds a cancelled handler may take before its task is cancelled",
            "min": 0.0,
            "max": 30.0,
        },
    )
    scrub_dialog_on_failure: bool = field(
        default=True,
        metadata={"help": "drop the rest of a dialog when one of its directives fails (SDK behaviour)"},
    )


@dataclass(slots=True, eq=False)
class _Job:
    directive: Directive
    handler: DirectiveHandler
    blocking: bool
    done: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def dialog(self) -> str | None:
        return self.directive.dialog_request_id


class _Lane:
    """One handler's queue; its worker runs one job at a time."""

    def __init__(self, handler: DirectiveHandler, size: int) -> None:
        self.handler = handler
        self.pending: deque[_Job] = deque()
        self.size = size
        self.wakeup = asyncio.Event()
        self.current: _Job | None = None

    def push(self, job: _Job) -> bool:
        if len(self.pending) >= self.size:
            return False
        self.pending.append(job)
        self.wakeup.set()
        return True


class DirectiveSequencer:
    def __init__(
        self,
        on_exception: Callable[[Event], Awaitable[None]],
        settings: SequencerSettings | None = None,
    ) -> None:
        self._on_exception = on_exception
        self._settings = settings or SequencerSettings()
        self._routes: dict[tuple[str, str], DirectiveHandler] = {}
        self._lanes: dict[int, _Lane] = {}
        self._dialog: str | None = None
        self._dialog_queue: deque[_Job] = deque()
        self._dialog_wakeup = asyncio.Event()
        self._reporting = False
        self._reports: asyncio.Queue[Event] = asyncio.Queue(maxsize=self._settings.queue_size)
        self._scrubs = TaskSet(log)
        self._tg: asyncio.TaskGroup | None = None
        self._stopped = asyncio.Event()
        # Set whenever work leaves a queue, a job ends or a report is sent: idle() re-checks then (no polling).
        self._progress = asyncio.Event()

    @property
    def dialog_request_id(self) -> str | None:
        return self._dialog

    def register(self, handler: DirectiveHandler) -> None:
        for key in handler.handles():
            if key in self._routes and self._routes[key] is not handler:
                raise ValueError(f"{key[0]}.{key[1]} already has a handler")
            self._routes[key] = handler
        if id(handler) not in self._lanes:
            lane = _Lane(handler, self._settings.queue_size)
            self._lanes[id(handler)] = lane
            if self._tg is not None:
                self._tg.create_task(self._lane_worker(lane), name=f"directives-{type(handler).__name__}")

    # -- dialogs ---------------------------------------------------------------------------------------------

    def set_dialog_request_id(self, dialog_request_id: str) -> None:
        """Make ``dialog_request_id`` current (before a Recognize is sent). Cancellation runs in the
        background; use ``new_dialog`` to wait for it."""
        self._start_scrub(dialog_request_id)

    async def new_dialog(self, dialog_request_id: str) -> None:
        task = self._start_scrub(dialog_request_id)
        if task is not None:
            await asyncio.shield(task)

    def _start_scrub(self, dialog_request_id: str) -> asyncio.Task[None] | None:
        if dialog_request_id == self._dialog:
            return None
        log.debug("dialogRequestId %s -> %s", self._dialog, dialog_request_id)
        old, self._dialog = self._dialog, dialog_request_id
        return self._scrub(lambda d: d is not None and d != dialog_request_id, f"new dialog (was {old})")

    def _scrub(self, stale: Callable[[str | None], bool], reason: str) -> asyncio.Task[None] | None:
        """Take every stale job out of the queues now; cancel them (and the running ones) in a task."""
        queued = [j for j in self._dialog_queue if stale(j.dialog)]
        for job in queued:
            self._dialog_queue.remove(job)
        running: list[_Job] = []
        for lane in self._lanes.values():
            mine = [j for j in lane.pending if stale(j.dialog)]
            for job in mine:
                lane.pending.remove(job)
            queued.extend(mine)
            if lane.current is not None and stale(lane.current.dialog) and not lane.current.cancelled:
                running.append(lane.current)
        if not queued and not running:
            return None
        for job in (*queued, *running):
            job.cancelled = True
        task = self._scrubs.spawn(self._cancel_jobs(queued, running, reason), "directives-scrub")
        task.add_done_callback(lambda _task: self._progress.set())  # after the TaskSet dropped it
        self._progress.set()
        return task

    async def _cancel_jobs(self, queued: list[_Job], running: list[_Job], reason: str) -> None:
        for job in queued:
            log.info("cancelling queued %s: %s", job.directive.qualified_name, reason)
            await self._call_cancel(job)
            job.done.set()
        for job in running:
            log.info("cancelling running %s: %s", job.directive.qualified_name, reason)
            await self._call_cancel(job)
        for job in running:
            try:
                async with asyncio.timeout(self._settings.cancel_grace_s):
                    await job.done.wait()
            except TimeoutError:
                log.warning(
                    "%s did not stop within %.1f s of cancel(); cancelling its task",
                    job.directive.qualified_name,
                    self._settings.cancel_grace_s,
                )
                if job.task is not None:
                    job.task.cancel()
                await job.done.wait()

    async def _call_cancel(self, job: _Job) -> None:
        try:
            await job.handler.cancel(job.directive)
        except Exception:
            log.exception("cancel() of %s failed", job.directive.qualified_name)

    # -- intake ----------------------------------------------------------------------------------------------

    def submit(self, directive: Directive) -> None:
        """Accept one parsed directive (downchannel or event response). Never blocks, never raises."""
        dialog = directive.dialog_request_id
        if dialog is not None and dialog != self._dialog:
            log.debug(
                "dropping %s of old dialog %s (current %s)", directive.qualified_name, dialog, self._dialog
            )
            return
        handler = self._routes.get((directive.namespace, directive.name))
        if handler is None:
            log.warning("no handler for %s", directive.qualified_name)
            self._report(directive, ExceptionErrorType.UNSUPPORTED_OPERATION, "Unsupported operation")
            return
        try:
            blocking = handler.blocking(directive)
        except Exception:
            log.exception("blocking() of %s failed", directive.qualified_name)
            blocking = False
        job = _Job(directive, handler, blocking)
        log.info("directive %s%s", directive.qualified_name, f" ({dialog})" if dialog else "")
        if dialog is None:
            # Not part of a dialog: straight to its handler's lane, never behind a blocking Speak.
            if not self._lanes[id(handler)].push(job):
                log.warning("lane of %s full; dropping %s", type(handler).__name__, directive.qualified_name)
            return
        if len(self._dialog_queue) >= self._settings.queue_size:
            log.warning("dialog queue full; dropping %s", directive.qualified_name)
            return
        self._dialog_queue.append(job)
        self._dialog_wakeup.set()

    def _report(self, directive: Directive, error_type: ExceptionErrorType, message: str) -> None:
        unparsed = directive.raw or directive.to_json().decode()
        try:
            self._reports.put_nowait(exception_encountered(unparsed, error_type, message))
        except asyncio.QueueFull:
            log.warning(
                "too many pending ExceptionEncountered events; dropping one for %s", directive.qualified_name
            )

    # -- workers ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``close()``; the workers live in one TaskGroup."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._dialog_worker(), name="directives-dialog")
                tg.create_task(self._report_worker(), name="directives-exceptions")
                for lane in self._lanes.values():
                    tg.create_task(self._lane_worker(lane), name=f"directives-{type(lane.handler).__name__}")
                await self._stopped.wait()
                raise _Stop
        except* _Stop:
            pass
        finally:
            self._tg = None

    async def close(self) -> None:
        self._stopped.set()
        for task in list(self._scrubs):
            task.cancel()
        for task in list(self._scrubs):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def is_idle(self) -> bool:
        """Nothing queued, running, being cancelled or being reported."""
        return not (
            self._dialog_queue
            or self._scrubs
            or not self._reports.empty()
            or self._reporting
            or any(lane.pending or lane.current is not None for lane in self._lanes.values())
        )

    async def idle(self) -> None:
        """Wait until :meth:`is_idle`. DialogController awaits this for a whole answer (a Speak of a minute), so it
        sleeps on ``_progress`` and re-checks only when work moved; it used to poll every 2 ms (3.8 % of a core)."""
        while True:
            self._progress.clear()
            if self.is_idle():
                return
            await self._progress.wait()

    async def _dialog_worker(self) -> None:
        while True:
            while not self._dialog_queue:
                self._dialog_wakeup.clear()
                await self._dialog_wakeup.wait()
            job = self._dialog_queue.popleft()
            self._progress.set()
            if job.cancelled or job.dialog != self._dialog:
                continue
            if not self._lanes[id(job.handler)].push(job):
                log.warning(
                    "lane of %s full; dropping %s", type(job.handler).__name__, job.directive.qualified_name
                )
                continue
            if job.blocking:
                await job.done.wait()

    async def _lane_worker(self, lane: _Lane) -> None:
        while True:
            while not lane.pending:
                lane.wakeup.clear()
                await lane.wakeup.wait()
            job = lane.pending.popleft()
            self._progress.set()
            if job.cancelled:
                job.done.set()
                continue
            lane.current = job
            job.task = asyncio.create_task(lane.handler.handle(job.directive))
            try:
                # asyncio.wait never raises the task's exception, so a CancelledError here is ours (close()).
                await asyncio.wait({job.task})
            except asyncio.CancelledError:
                # Shutting down: stop the handler too, and give it a moment to unwind.
                job.task.cancel()
                await asyncio.wait({job.task}, timeout=self._settings.cancel_grace_s)
                raise
            finally:
                lane.current = None
                self._progress.set()
            self._finished(job, job.task)
            job.done.set()

    def _finished(self, job: _Job, task: asyncio.Task[None]) -> None:
        d = job.directive
        if task.cancelled():
            log.debug("%s was cancelled", d.qualified_name)
            return
        exc = task.exception()
        if exc is None:
            return
        if job.cancelled:
            log.debug("%s raised %r after being cancelled", d.qualified_name, exc)
            return
        if isinstance(exc, DirectiveParseError):
            log.warning("%s: bad payload: %s", d.qualified_name, exc)
            self._report(d, ExceptionErrorType.UNEXPECTED_INFORMATION_RECEIVED, str(exc))
        else:
            log.error("%s failed", d.qualified_name, exc_info=exc)
            self._report(d, ExceptionErrorType.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        failed = job.dialog
        if failed is not None and self._settings.scrub_dialog_on_failure:
            # SDK: a failed directive scrubs its dialog, and later directives of that dialog are dropped too.
            if failed == self._dialog:
                self._dialog = None
            self._scrub(lambda dialog: dialog == failed, f"{d.qualified_name} failed")

    async def _report_worker(self) -> None:
        while True:
            event = await self._reports.get()
            self._reporting = True
            try:
                await self._on_exception(event)
            except Exception as exc:
                # Best effort, like the SDK: an ExceptionEncountered that cannot be sent is not retried.
                log.warning("could not send ExceptionEncountered: %s", exc)
            finally:
                self._reporting = False
                self._progress.set()


class _Stop(Exception):
    """Internal: ends run()'s TaskGroup."""
