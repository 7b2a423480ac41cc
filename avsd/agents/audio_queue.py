"""The pure parts of AudioPlayer (protocol reference §6.3): directive payloads, the expectedPreviousToken rule and
progress-report timing. No I/O, no clock: offsets arrive as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from avsd.avs.messages import Directive
from avsd.errors import DirectiveParseError


class PlayBehavior(StrEnum):
    REPLACE_ALL = "REPLACE_ALL"
    ENQUEUE = "ENQUEUE"
    REPLACE_ENQUEUED = "REPLACE_ENQUEUED"


class ClearBehavior(StrEnum):
    CLEAR_ENQUEUED = "CLEAR_ENQUEUED"
    CLEAR_ALL = "CLEAR_ALL"


class PlayerActivity(StrEnum):
    IDLE = "IDLE"
    PLAYING = "PLAYING"
    PAUSED = "PAUSED"
    BUFFER_UNDERRUN = "BUFFER_UNDERRUN"
    FINISHED = "FINISHED"
    STOPPED = "STOPPED"


class ActivityTrigger(StrEnum):
    """What happens to the current item (the AudioPlayer's activity changes only through these)."""

    STARTED = "started"  # its first sample left the player
    PAUSED = "paused"  # the Content channel went to the background with the pause policy
    RESUMED = "resumed"  # back in the foreground
    FINISHED = "finished"  # played to its end
    STOPPED = "stopped"  # Stop, ClearQueue CLEAR_ALL, REPLACE_ALL, focus lost, or the player closed under it
    FAILED = "failed"  # no candidate started, or the stream broke


_A, _AT = PlayerActivity, ActivityTrigger
# PlayerActivity (§6.3 PlaybackState) as one table. A pair missing from it is a bug in the caller: it is logged and
# the activity stays. BUFFER_UNDERRUN is never entered (no PlaybackStutter events yet).
ACTIVITY_TABLE: dict[PlayerActivity, dict[ActivityTrigger, PlayerActivity]] = {
    _A.IDLE: {_AT.STARTED: _A.PLAYING, _AT.STOPPED: _A.STOPPED, _AT.FAILED: _A.STOPPED},
    _A.PLAYING: {_AT.PAUSED: _A.PAUSED, _AT.FINISHED: _A.FINISHED, _AT.STOPPED: _A.STOPPED, _AT.FAILED: _A.STOPPED},
    _A.PAUSED: {_AT.RESUMED: _A.PLAYING, _AT.STOPPED: _A.STOPPED, _AT.FAILED: _A.STOPPED, _AT.FINISHED: _A.FINISHED},
    _A.BUFFER_UNDERRUN: {_AT.STOPPED: _A.STOPPED, _AT.FAILED: _A.STOPPED},
    # After an item: the next one starts, or a queued item that never started is stopped or fails.
    _A.FINISHED: {_AT.STARTED: _A.PLAYING, _AT.STOPPED: _A.STOPPED, _AT.FAILED: _A.STOPPED},
    _A.STOPPED: {_AT.STARTED: _A.PLAYING, _AT.STOPPED: _A.STOPPED, _AT.FAILED: _A.STOPPED},
}


def next_activity(activity: PlayerActivity, trigger: ActivityTrigger) -> PlayerActivity | None:
    """The activity after ``trigger``, or None when the pair is not in the table. Pure."""
    return ACTIVITY_TABLE[activity].get(trigger)


def item_started(activity: PlayerActivity) -> bool:
    """Whether the current item has played a sample (it is playing or paused)."""
    return activity in (_A.PLAYING, _A.PAUSED)


class MediaErrorType(StrEnum):
    MEDIA_ERROR_UNKNOWN = "MEDIA_ERROR_UNKNOWN"
    MEDIA_ERROR_INVALID_REQUEST = "MEDIA_ERROR_INVALID_REQUEST"
    MEDIA_ERROR_SERVICE_UNAVAILABLE = "MEDIA_ERROR_SERVICE_UNAVAILABLE"
    MEDIA_ERROR_INTERNAL_SERVER_ERROR = "MEDIA_ERROR_INTERNAL_SERVER_ERROR"
    MEDIA_ERROR_INTERNAL_DEVICE_ERROR = "MEDIA_ERROR_INTERNAL_DEVICE_ERROR"


@dataclass(frozen=True, slots=True)
class AudioItem:
    token: str
    url: str
    audio_item_id: str = "anonymous"
    offset_ms: int = 0
    expected_previous_token: str = ""
    progress_delay_ms: int = 0
    progress_interval_ms: int = 0
    stream_format: str = "AUDIO_MPEG"


def _non_negative_int(obj: dict[str, Any], key: str, directive: Directive) -> int:
    value = obj.get(key, 0)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DirectiveParseError(f"{key} must be a non-negative integer", directive.raw)
    return value


def parse_play(directive: Directive) -> tuple[PlayBehavior, AudioItem]:
    """``AudioPlayer.Play`` -> (behavior, item). Missing playBehavior means ENQUEUE (SDK)."""
    payload = directive.payload
    raw_behavior = payload.get("playBehavior") or PlayBehavior.ENQUEUE.value
    try:
        behavior = PlayBehavior(raw_behavior)
    except ValueError:
        raise DirectiveParseError(f"unknown playBehavior {raw_behavior!r}", directive.raw) from None
    audio_item = payload.get("audioItem")
    stream = audio_item.get("stream") if isinstance(audio_item, dict) else None
    if not isinstance(audio_item, dict) or not isinstance(stream, dict):
        raise DirectiveParseError("Play needs audioItem.stream", directive.raw)
    token, url = stream.get("token"), stream.get("url")
    if not isinstance(token, str) or not token or not isinstance(url, str) or not url:
        raise DirectiveParseError("Play needs string stream.token and stream.url", directive.raw)
    progress = stream.get("progressReport") or {}
    if not isinstance(progress, dict):
        raise DirectiveParseError("progressReport must be an object", directive.raw)
    expected = stream.get("expectedPreviousToken") or ""
    item_id = audio_item.get("audioItemId")
    return behavior, AudioItem(
        token=token,
        url=url,
        audio_item_id=item_id if isinstance(item_id, str) and item_id else "anonymous",
        offset_ms=_non_negative_int(stream, "offsetInMilliseconds", directive),
        expected_previous_token=expected if isinstance(expected, str) else "",
        progress_delay_ms=_non_negative_int(progress, "progressReportDelayInMilliseconds", directive),
        progress_interval_ms=_non_negative_int(progress, "progressReportIntervalInMilliseconds", directive),
        stream_format=str(stream.get("streamFormat") or "AUDIO_MPEG"),
    )


def parse_clear_behavior(directive: Directive) -> ClearBehavior:
    raw = directive.payload.get("clearBehavior") or ClearBehavior.CLEAR_ENQUEUED.value
    try:
        return ClearBehavior(raw)
    except ValueError:
        raise DirectiveParseError(f"unknown clearBehavior {raw!r}", directive.raw) from None


def accept_play(behavior: PlayBehavior, item: AudioItem, current_token: str, queued: list[str]) -> bool:
    """The expectedPreviousToken rule: a set token must name the item this one follows, else drop the Play.

    ENQUEUE follows the last queued item (or the current / last played one); REPLACE_ENQUEUED follows the current
    one; REPLACE_ALL follows nothing and is always taken.
    """
    expected = item.expected_previous_token
    if not expected or behavior is PlayBehavior.REPLACE_ALL:
        return True
    previous = queued[-1] if behavior is PlayBehavior.ENQUEUE and queued else current_token
    return expected == previous


DELAY_ELAPSED = "ProgressReportDelayElapsed"
INTERVAL_ELAPSED = "ProgressReportIntervalElapsed"
_MAX_REPORTS_PER_CALL = 1000


class ProgressTracker:
    """Which progress reports are due at a playback offset. Each returned with its nominal offset.

    The delay report comes once, only if the item started before it; interval reports come at every multiple of
    the interval after the start offset (offsets in the track, as the SDK's ProgressTimer counts them).
    """

    def __init__(self, delay_ms: int, interval_ms: int, start_offset_ms: int = 0) -> None:
        self._delay: int | None = delay_ms if delay_ms > 0 and start_offset_ms < delay_ms else None
        self._interval = interval_ms
        self._next: int | None = (start_offset_ms // interval_ms + 1) * interval_ms if interval_ms > 0 else None

    def due(self, offset_ms: int) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        while len(out) < _MAX_REPORTS_PER_CALL:
            delay_due = self._delay is not None and offset_ms >= self._delay
            interval_due = self._next is not None and offset_ms >= self._next
            if not delay_due and not interval_due:
                break
            if delay_due and (not interval_due or (self._delay or 0) <= (self._next or 0)):
                out.append((DELAY_ELAPSED, self._delay or 0))
                self._delay = None
            else:
                out.append((INTERVAL_ELAPSED, self._next or 0))
                self._next = (self._next or 0) + self._interval
        return out


__all__ = [
    "DELAY_ELAPSED",
    "INTERVAL_ELAPSED",
    "AudioItem",
    "ClearBehavior",
    "MediaErrorType",
    "PlayBehavior",
    "PlayerActivity",
    "ProgressTracker",
    "accept_play",
    "parse_clear_behavior",
    "parse_play",
]
