"""AudioPlayer 1.0 (protocol reference §6.3): music, radio, podcasts on the Content channel.

- ``Play`` with ``REPLACE_ALL`` (stop the current item, PlaybackStopped, clear the queue), ``ENQUEUE``, and
  ``REPLACE_ENQUEUED`` (keep the current item, replace what is queued). ``expectedPreviousToken``, when set, must
  name the item this one would follow (the last queued one, else the current or last played one): otherwise the
  Play is dropped, as the SDK does. ``offsetInMilliseconds`` starts inside the item.
- ``stream.url`` is a ``cid:`` attachment or a URL. URLs that may be playlists (M3U/M3U8/PLS/ASX; anything not
  ending like an audio file) are resolved first (:mod:`avsd.playback.playlists`); each entry is tried in turn
  until one starts, so a dead mirror is skipped.
- Events: PlaybackStarted, PlaybackNearlyFinished (right after PlaybackStarted, as SDK 1.x, or just before
  PlaybackFinished: setting ``nearly_finished``), ProgressReportDelayElapsed / ProgressReportIntervalElapsed,
  PlaybackFinished, PlaybackStopped, PlaybackPaused, PlaybackResumed, PlaybackFailed, PlaybackQueueCleared.
- ``Stop`` stops the current item (no auto-advance; the queue is kept, like the SDK); ``ClearQueue``
  ``CLEAR_ENQUEUED`` keeps the current item, ``CLEAR_ALL`` also stops it.
- Focus (§7.2): the Content channel is acquired while something plays or waits to. BACKGROUND pauses
  (PlaybackPaused) or ducks (policy ``focus.content_policy``), FOREGROUND resumes (PlaybackResumed) or un-ducks;
  with the pause policy a new item waits in BACKGROUND until it gets the foreground. NONE from someone else stops
  the item and clears the queue.
- A failure (no candidate starts, or the stream breaks) sends PlaybackFailed, stops and clears the queue, like the
  SDK.

All state changes run under one lock; focus changes arrive synchronously and are applied in a task that takes it.
Progress reports use the nominal offset (delay, k * interval), so they do not depend on the polling tick.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Collection, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from avsd.agents.audio_queue import (
    ActivityTrigger,
    AudioItem,
    ClearBehavior,
    MediaErrorType,
    PlayBehavior,
    PlayerActivity,
    ProgressTracker,
    accept_play,
    item_started,
    next_activity,
    parse_clear_behavior,
    parse_play,
)
from avsd.agents.events import EventSender
from avsd.agents.focus_agent import FocusArbiter
from avsd.avs.attachments import AttachmentStore, content_id_from_url
from avsd.avs.client import make_ssl_context
from avsd.avs.http import HttpClient
from avsd.avs.messages import Directive, Event, context_entry
from avsd.errors import AvsConnectionError, PlaybackError
from avsd.focus import Behavior, Channel, FocusChange, FocusState
from avsd.playback.base import Media, Playback, PlaybackOutcome, Player
from avsd.playback.playlists import MAX_PLAYLIST_BYTES, Fetch, PlaylistError, resolve
from avsd.tasks import TaskSet

_LOGGER = logging.getLogger(__name__)
NAMESPACE = "AudioPlayer"
ACTIVITY = NAMESPACE  # focus activity id

_AUDIO_EXTENSIONS = (".mp3", ".aac", ".m4a", ".ogg", ".oga", ".opus", ".flac", ".wav")


class NearlyFinishedAt(StrEnum):
    START = "start"
    END = "end"


@dataclass(frozen=True, slots=True)
class AudioPlayerSettings:
    start_timeout_s: float = field(
        default=10.0,
        metadata={"help": "seconds one stream URL may take to start before the next entry is tried", "min": 0.5,
                  "max": 120.0},
    )
    max_queue: int = field(default=32, metadata={"help": "queued items kept; more are dropped", "min": 1, "max": 1000})
    progress_tick_s: float = field(
        default=0.1, metadata={"help": "how often the playback offset is checked for progress reports",
                               "min": 0.01, "max": 5.0},
    )
    nearly_finished: str = field(
        default=NearlyFinishedAt.START.value,
        metadata={"help": "send PlaybackNearlyFinished right after the start (SDK 1.x) or just before the end",
                  "choices": tuple(NearlyFinishedAt)},
    )
    playlist_timeout_s: float = field(
        default=10.0, metadata={"help": "seconds to fetch a playlist", "min": 0.5, "max": 120.0}
    )


class Ducker(Protocol):
    """The Speaker agent: lowers the content player's volume while another channel is in front."""

    def duck(self) -> None: ...

    def unduck(self) -> None: ...


async def http_fetch(url: str, *, timeout_s: float, ca_file: str = "") -> tuple[str, bytes]:
    """(content type, first bytes) of ``url`` for the playlist resolver. Reads a bounded prefix: the URL may be an
    endless radio stream. Transport errors (already avsd errors at the HTTP boundary) become PlaybackError.
    ``ca_file``: an extra CA to trust besides the system's (the emulator's media route)."""
    ssl_context = make_ssl_context(ca_file) if ca_file else None
    try:
        async with (
            HttpClient(ssl_context=ssl_context, timeout=timeout_s, http2=False, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status >= 400:
                raise PlaybackError(f"{url[:80]} answered HTTP {response.status}")
            content_type = response.headers.get("content-type", "")
            mime = content_type.split(";")[0].strip().lower()
            # Audio (not a playlist type): a few bytes are enough for detect() to say "not a playlist".
            audio = mime.startswith("audio/") and not any(k in mime for k in ("url", "pls", "asx", "wax", "m3u"))
            limit = 4096 if audio else MAX_PLAYLIST_BYTES
            body = bytearray()
            async for chunk in response.decoded():
                body += chunk
                if len(body) >= limit:
                    break
            return content_type, bytes(body[:limit])
    except AvsConnectionError as exc:
        raise PlaybackError(f"cannot fetch {url[:80]}: {exc}") from exc


class ItemFailed(PlaybackError):
    """No candidate of an item could be played."""

    code = "audio-item-failed"

    def __init__(self, error_type: MediaErrorType, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class _Channel(StrEnum):
    """This agent's hold on the Content channel."""

    RELEASED = "released"  # not held (never acquired, or released by us)
    HELD = "held"  # acquired; the arbiter's FocusState says whether in front or behind
    TAKEN = "taken"  # someone else took it (focus NONE while held): stop and clear at the next reconcile


@dataclass(slots=True, eq=False)
class _Entry:
    item: AudioItem
    task: asyncio.Task[None] | None = None
    playback: Playback | None = None


class AudioPlayerAgent:
    def __init__(
        self,
        *,
        player: Player,
        attachments: AttachmentStore,
        events: EventSender,
        focus: FocusArbiter,
        ducker: Ducker | None = None,
        settings: AudioPlayerSettings | None = None,
        fetch: Fetch | None = None,
        ca_file: str = "",
    ) -> None:
        self.settings = settings or AudioPlayerSettings()
        self._player = player
        self._attachments = attachments
        self._events = events
        self._focus = focus
        self._ducker = ducker
        self._fetch = fetch or self._http_fetch
        self._ca_file = ca_file
        self._lock = asyncio.Lock()
        self._queue: deque[AudioItem] = deque()
        self._current: _Entry | None = None
        self._activity = PlayerActivity.IDLE  # changed only by _move, through ACTIVITY_TABLE
        self.unexpected = 0
        self._token = ""
        self._last_offset_ms = 0
        self._channel = _Channel.RELEASED
        self._focus_state = FocusState.NONE
        self._focus_behavior = Behavior.STOP
        self._tasks = TaskSet(_LOGGER)
        focus.register(ACTIVITY, self)

    # ----- state --------------------------------------------------------------------------------------------

    @property
    def activity(self) -> PlayerActivity:
        return self._activity

    @property
    def busy(self) -> bool:
        """An item is being fetched, played or paused, or queued (``avsd demo`` waits for the music's end)."""
        return self._current is not None or bool(self._queue)

    @property
    def queued_tokens(self) -> list[str]:
        return [item.token for item in self._queue]

    @property
    def offset_ms(self) -> int:
        entry = self._current
        if entry is not None and item_started(self._activity) and entry.playback is not None:
            return entry.playback.offset_ms
        return self._last_offset_ms

    def context(self) -> dict[str, Any]:
        return context_entry(
            NAMESPACE,
            "PlaybackState",
            {"token": self._token, "offsetInMilliseconds": self.offset_ms, "playerActivity": str(self._activity)},
        )

    # ----- DirectiveHandler ---------------------------------------------------------------------------------

    def handles(self) -> Collection[tuple[str, str]]:
        return {(NAMESPACE, "Play"), (NAMESPACE, "Stop"), (NAMESPACE, "ClearQueue")}

    def blocking(self, directive: Directive) -> bool:
        return False  # SDK: audio medium, non-blocking; Play is done once queued

    async def handle(self, directive: Directive) -> None:
        if directive.name == "Play":
            behavior, item = parse_play(directive)
            async with self._lock:
                await self._play(behavior, item)
        elif directive.name == "Stop":
            async with self._lock:
                await self._stop_current()
                await self._advance(start=False)
        else:
            clear = parse_clear_behavior(directive)
            async with self._lock:
                self._queue.clear()
                if clear is ClearBehavior.CLEAR_ALL:
                    await self._stop_current()
                self._send("PlaybackQueueCleared", {})
                await self._advance(start=False)

    async def cancel(self, directive: Directive) -> None:
        # Play is complete once queued: a superseded dialog does not take back music that was asked for.
        return None

    # ----- focus --------------------------------------------------------------------------------------------

    def on_focus(self, change: FocusChange) -> None:
        self._focus_state, self._focus_behavior = change.focus, change.behavior
        if change.focus is FocusState.NONE and self._channel is _Channel.HELD:
            self._channel = _Channel.TAKEN  # by someone else: stop and clear (our own release is RELEASED)
        self._spawn(self._locked_reconcile(), "audio-focus")

    async def _locked_reconcile(self) -> None:
        async with self._lock:
            await self._reconcile()

    async def _reconcile(self) -> None:
        """Make playback match the focus; idempotent (reads the current state, not the change that woke it)."""
        if self._channel is _Channel.TAKEN:
            self._channel = _Channel.RELEASED
            self._queue.clear()
            await self._stop_current()
        if self._channel is not _Channel.HELD:
            self._unduck()
            return
        entry = self._current
        if self._paused_by_focus():
            self._unduck()
            if entry is not None:
                await self._pause(entry)
            return
        if self._focus_state is FocusState.BACKGROUND:
            if self._ducker is not None:
                self._ducker.duck()
        else:
            self._unduck()
        if entry is None:
            if self._queue:
                self._start(self._queue.popleft())
            return
        if self._activity is PlayerActivity.PAUSED and entry.playback is not None:
            await entry.playback.resume()
            self._move(ActivityTrigger.RESUMED)
            self._send_state("PlaybackResumed", entry)

    def _unduck(self) -> None:
        if self._ducker is not None:
            self._ducker.unduck()

    def _paused_by_focus(self) -> bool:
        """In the background with the pause policy (a new item then waits, paused, until the foreground)."""
        return self._focus_state is FocusState.BACKGROUND and self._focus_behavior is Behavior.PAUSE

    async def _pause(self, entry: _Entry) -> None:
        if self._activity is PlayerActivity.PLAYING and entry.playback is not None:
            await entry.playback.pause()
            self._move(ActivityTrigger.PAUSED)
            self._send_state("PlaybackPaused", entry)

    def _move(self, trigger: ActivityTrigger) -> None:
        """Change the activity through the table; an unexpected pair is logged and changes nothing."""
        after = next_activity(self._activity, trigger)
        if after is None:
            self.unexpected += 1
            _LOGGER.warning("unexpected %s while %s; activity kept", trigger, self._activity)
            return
        self._activity = after

    def _acquire(self) -> None:
        if self._channel is not _Channel.HELD:
            self._channel = _Channel.HELD
            self._focus_state = self._focus.acquire(Channel.CONTENT, ACTIVITY)

    def _release(self) -> None:
        if self._channel is _Channel.HELD:
            self._channel = _Channel.RELEASED
            self._focus.release(Channel.CONTENT, ACTIVITY)

    # ----- queue (under the lock) ---------------------------------------------------------------------------

    async def _play(self, behavior: PlayBehavior, item: AudioItem) -> None:
        current = self._current.item.token if self._current is not None else self._token
        if not accept_play(behavior, item, current, self.queued_tokens):
            _LOGGER.info(
                "dropping Play %s: expectedPreviousToken %r does not follow %r",
                item.token, item.expected_previous_token, self._queue[-1].token if self._queue else current,
            )
            return
        _LOGGER.info("Play %s %s (%s)", behavior, item.token, item.url[:80])
        if behavior is PlayBehavior.REPLACE_ALL:
            self._queue.clear()
            await self._stop_current()
        elif behavior is PlayBehavior.REPLACE_ENQUEUED:
            self._queue.clear()
        if len(self._queue) >= self.settings.max_queue:
            _LOGGER.warning("audio queue full (%d); dropping %s", len(self._queue), item.token)
            return
        self._queue.append(item)
        await self._advance()

    async def _advance(self, *, start: bool = True) -> None:
        """Start the next item if nothing plays (``start``), holding focus while there is something to play."""
        if self._current is None and (not self._queue or not start):
            self._release()
            await self._reconcile()
            return
        self._acquire()
        await self._reconcile()

    def _start(self, item: AudioItem) -> None:
        entry = _Entry(item)
        self._current = entry
        self._token = item.token
        self._last_offset_ms = item.offset_ms
        entry.task = self._spawn(self._run(entry), f"audio-{item.token[:16]}")

    async def _stop_current(self) -> None:
        entry, self._current = self._current, None
        if entry is None:
            return
        started = item_started(self._activity)
        if entry.task is not None and not entry.task.done() and entry.task is not asyncio.current_task():
            entry.task.cancel()
            await asyncio.wait({entry.task})
        offset = self._last_offset_ms
        if entry.playback is not None:
            offset = entry.playback.offset_ms if started else entry.item.offset_ms
            await entry.playback.stop()
        self._last_offset_ms = offset
        self._move(ActivityTrigger.STOPPED)
        if started:
            self._send("PlaybackStopped", {"token": entry.item.token, "offsetInMilliseconds": offset})

    # ----- one item -----------------------------------------------------------------------------------------

    async def _run(self, entry: _Entry) -> None:
        item = entry.item
        try:
            playback = await self._open(entry)
        except ItemFailed as exc:
            _LOGGER.warning("cannot play %s: %s", item.token, exc)
            async with self._lock:
                if self._current is entry:
                    self._fail(entry, exc.error_type, str(exc))
                    await self._advance()
            return
        async with self._lock:
            if self._current is not entry:
                return
            self._move(ActivityTrigger.STARTED)
            self._send("PlaybackStarted", {"token": item.token, "offsetInMilliseconds": item.offset_ms})
            if self.settings.nearly_finished == NearlyFinishedAt.START:
                self._send_state("PlaybackNearlyFinished", entry)
            if self._paused_by_focus():  # focus went to the background before the first sample
                await self._pause(entry)
        progress = ProgressTracker(item.progress_delay_ms, item.progress_interval_ms, item.offset_ms)
        outcome = await self._watch(playback, progress, item.token)
        async with self._lock:
            if self._current is not entry:
                return
            offset = playback.offset_ms
            self._last_offset_ms = offset
            for name, at in progress.due(offset):
                self._send(name, {"token": item.token, "offsetInMilliseconds": at})
            if outcome is PlaybackOutcome.FINISHED:
                if self.settings.nearly_finished == NearlyFinishedAt.END:
                    self._send_state("PlaybackNearlyFinished", entry)
                self._move(ActivityTrigger.FINISHED)
                self._send_state("PlaybackFinished", entry)
                self._current = None
            elif outcome is PlaybackOutcome.FAILED:
                self._fail(entry, MediaErrorType.MEDIA_ERROR_UNKNOWN, str(playback.error or "playback failed"))
            else:  # stopped underneath us (player closed): report it like a Stop
                self._current = None
                self._move(ActivityTrigger.STOPPED)
                self._send_state("PlaybackStopped", entry)
            await self._advance()

    async def _watch(self, playback: Playback, progress: ProgressTracker, token: str) -> PlaybackOutcome:
        while True:
            try:
                async with asyncio.timeout(self.settings.progress_tick_s):
                    return await playback.finished()
            except TimeoutError:
                for name, at in progress.due(playback.offset_ms):
                    self._send(name, {"token": token, "offsetInMilliseconds": at})

    def _fail(self, entry: _Entry, error_type: MediaErrorType, message: str) -> None:
        started = item_started(self._activity)
        offset = entry.playback.offset_ms if started and entry.playback is not None else entry.item.offset_ms
        state = {"token": entry.item.token, "offsetInMilliseconds": offset, "playerActivity": str(self._activity)}
        self._send(
            "PlaybackFailed",
            {"token": entry.item.token, "currentPlaybackState": state, "error": {"type": str(error_type),
                                                                                 "message": message[:200]}},
        )
        self._current = None
        self._move(ActivityTrigger.FAILED)
        self._last_offset_ms = offset
        self._queue.clear()  # SDK: a failed item stops playback; the cloud decides what comes next

    async def _open(self, entry: _Entry) -> Playback:
        """Start the item's first playable candidate; raises ItemFailed when none starts."""
        item = entry.item
        content_id = content_id_from_url(item.url)
        if content_id:
            candidates = [Media.stream(self._attachments.get(content_id))]
        elif item.url.startswith(("http://", "https://")):
            candidates = [Media.from_url(url) for url in await self._candidates(item.url)]
        else:
            raise ItemFailed(MediaErrorType.MEDIA_ERROR_INVALID_REQUEST, f"unsupported stream url {item.url[:60]!r}")
        error = "no stream"
        for number, media in enumerate(candidates, 1):
            playback = self._player.play(media, offset_ms=item.offset_ms)
            entry.playback = playback
            try:
                async with asyncio.timeout(self.settings.start_timeout_s):
                    await playback.started()
                return playback
            except TimeoutError:
                await playback.stop()
                error = f"{media.describe()} did not start within {self.settings.start_timeout_s:.0f} s"
            except PlaybackError as exc:
                error = str(exc)
            _LOGGER.warning("%s: candidate %d/%d failed: %s", item.token, number, len(candidates), error)
        raise ItemFailed(MediaErrorType.MEDIA_ERROR_SERVICE_UNAVAILABLE, error)

    async def _candidates(self, url: str) -> list[str]:
        path = url.split("?", 1)[0].lower()
        if path.endswith(_AUDIO_EXTENSIONS):
            return [url]
        try:
            return await resolve(url, self._fetch)
        except PlaylistError as exc:
            raise ItemFailed(MediaErrorType.MEDIA_ERROR_INVALID_REQUEST, str(exc)) from exc
        except PlaybackError as exc:
            raise ItemFailed(MediaErrorType.MEDIA_ERROR_SERVICE_UNAVAILABLE, str(exc)) from exc

    async def _http_fetch(self, url: str) -> tuple[str, bytes]:
        return await http_fetch(url, timeout_s=self.settings.playlist_timeout_s, ca_file=self._ca_file)

    # ----- plumbing -----------------------------------------------------------------------------------------

    def _send(self, name: str, payload: dict[str, Any]) -> None:
        self._events.send(Event.new(NAMESPACE, name, payload))

    def _send_state(self, name: str, entry: _Entry) -> None:
        offset = entry.playback.offset_ms if entry.playback is not None else entry.item.offset_ms
        self._send(name, {"token": entry.item.token, "offsetInMilliseconds": offset})

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return self._tasks.spawn(coro, name)

    async def idle(self) -> None:
        """Wait until the focus changes scheduled so far have been applied (tests)."""
        pending = [t for t in self._tasks if t.get_name() == "audio-focus"]
        if pending:
            await asyncio.wait(pending)

    async def close(self) -> None:
        """Stop playing, without events (shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        entry, self._current = self._current, None
        if entry is not None and entry.playback is not None:
            await entry.playback.stop()


__all__ = ["ACTIVITY", "AudioPlayerAgent", "AudioPlayerSettings", "Ducker", "ItemFailed",
           "NearlyFinishedAt"]
