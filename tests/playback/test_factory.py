"""select_player (the composition root): backend choice, fallback when libvlc is missing, and the install hint."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import avsd.playback.vlcplayer as vlcplayer
from avsd.errors import PlaybackError
from avsd.playback.base import Media, MediaKind, PlaybackSettings
from avsd.root import select_player


def _no_vlc() -> object:
    raise vlcplayer.VlcUnavailableError(f"libvlc cannot be loaded; install it: {vlcplayer.INSTALL_HINT}")


@pytest.mark.parametrize(
    ("backend", "vlc_present", "expected"),
    [("wav", True, "wav"), ("pcm", True, "pcm"), ("vlc", True, "vlc"), ("auto", True, "vlc"), ("auto", False, "pcm")],
)
async def test_backend_choice(
    backend: str, vlc_present: bool, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if not vlc_present:
        monkeypatch.setattr(vlcplayer, "_load_vlc", _no_vlc)
    # `avsd` CLI tests install avsd's own handlers (propagate off); the log lines are what is checked here.
    monkeypatch.setattr(logging.getLogger("avsd"), "propagate", True)
    caplog.set_level("INFO")
    player = select_player(PlaybackSettings(backend=backend, wav_dir=str(tmp_path)), name="speech")
    try:
        assert player.name == expected
        assert f"using the {expected} backend" in caplog.text
        if not vlc_present:
            assert "falling back to the pcm backend" in caplog.text
    finally:
        await player.close()


def test_vlc_asked_but_missing_names_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vlcplayer, "_load_vlc", _no_vlc)
    with pytest.raises(PlaybackError, match="sudo apt install vlc-plugin-base libvlc5"):
        select_player(PlaybackSettings(backend="vlc"))


def test_unknown_backend() -> None:
    with pytest.raises(PlaybackError, match="unknown playback backend"):
        select_player(PlaybackSettings(backend="gstreamer"))


@pytest.mark.parametrize(
    ("media", "kind", "url"),
    [
        (Media.url("https://x/y.mp3"), MediaKind.URL, "https://x/y.mp3"),  # type: ignore[operator]
        (Media.from_url("file:///a.mp3"), MediaKind.URL, "file:///a.mp3"),
        (Media.file("/tmp/a.mp3"), MediaKind.FILE, "/tmp/a.mp3"),
    ],
)
def test_media_constructors(media: Media, kind: MediaKind, url: str) -> None:
    assert media.kind is kind
    assert media.url == url
    assert media.chunks is None
