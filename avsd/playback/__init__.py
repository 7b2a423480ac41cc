"""Playback: one player interface (:mod:`avsd.playback.base`), backends vlc, pcm and wav."""

from avsd.playback.base import (
    Media,
    MediaKind,
    Playback,
    PlaybackOutcome,
    PlaybackSettings,
    PlaybackStoppedError,
    Player,
)

__all__ = [
    "Media",
    "MediaKind",
    "Playback",
    "PlaybackOutcome",
    "PlaybackSettings",
    "PlaybackStoppedError",
    "Player",
]
