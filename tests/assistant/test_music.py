"""Music from a local folder: tags or file names, broken files skipped, files served over loopback HTTP,
AudioPlayer Play / Enqueue / PlaybackController answers."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import numpy as np
import pytest

from avsd.assistant.brain import AssistantBrain
from avsd.assistant.music import MusicLibrary, id3_tags
from avsd.assistant.settings import AssistantSettings
from avsd.speech.stt import Transcript
from avsd.speech.tts import encode_mp3


def tone_mp3(seconds: float = 0.5) -> bytes:
    t = np.arange(round(22050 * seconds)) / 22050
    return encode_mp3((8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes(), 22050)


def id3v23(title: str, artist: str) -> bytes:
    frames = b""
    for fid, text in (("TIT2", title), ("TPE1", artist)):
        data = b"\x03" + text.encode()
        frames += fid.encode() + len(data).to_bytes(4, "big") + b"\x00\x00" + data
    size = len(frames)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frames


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    music = tmp_path / "music"
    (music / "Abbey Road").mkdir(parents=True)
    (music / "Abbey Road" / "01 - Come Together.mp3").write_bytes(tone_mp3())
    (music / "Queen - Bohemian Rhapsody.mp3").write_bytes(tone_mp3())
    (music / "x.mp3").write_bytes(id3v23("Yellow Submarine", "The Beatles") + tone_mp3())
    (music / "broken.mp3").write_bytes(b"\x00garbage" * 50)
    return music


def test_library_reads_tags_and_names_and_skips_broken(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    lib = MusicLibrary(folder)
    assert {(t.title, t.artist, t.album) for t in lib.tracks} == {
        ("Come Together", "", "Abbey Road"),
        ("Bohemian Rhapsody", "Queen", ""),
        ("Yellow Submarine", "The Beatles", ""),
    }
    assert [p.name for p in lib.skipped] == ["broken.mp3"]
    assert "skipping broken.mp3" in caplog.text
    assert id3_tags(folder / "x.mp3") == {"title": "Yellow Submarine", "artist": "The Beatles"}
    assert lib.find("queen") is not None and lib.find("abbey road") is not None and lib.find("jazz") is None


class Heard:
    def __init__(self, text: str) -> None:
        self.text = text

    def recognition(self, grammar: str | None = None) -> Heard:
        return self

    def feed(self, pcm: bytes) -> None:
        pass

    def finish(self) -> asyncio.Future[Transcript]:
        f: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        f.set_result(Transcript(self.text))
        return f


def event(name: str = "SpeechRecognizer.Recognize", token: str = "", activity: str = "IDLE") -> dict:  # type: ignore[type-arg]
    ns, n = name.split(".")
    ctx = [{"header": {"namespace": "AudioPlayer", "name": "PlaybackState"},
            "payload": {"token": token, "offsetInMilliseconds": 0, "playerActivity": activity}}]
    return {"context": ctx, "event": {"header": {"namespace": ns, "name": n}, "payload": {"token": token}}}


async def test_play_by_title_artist_album_and_fetch(folder: Path) -> None:
    recognizer = Heard("play bohemian rhapsody")
    brain = AssistantBrain(AssistantSettings(music_dir=str(folder)), recognizer=recognizer)
    await brain.start()
    try:
        async with asyncio.timeout(20):
            answer = await brain.recognize(event()).answer()
            speak, play = answer.directives
            assert speak.speech == "Playing Bohemian Rhapsody."
            stream = play.payload["audioItem"]["stream"]
            assert play.payload["playBehavior"] == "REPLACE_ALL"
            async with httpx.AsyncClient() as client:
                whole = await client.get(stream["url"])
                part = await client.get(stream["url"], headers={"range": "bytes=10-19"})
                wrong = await client.get(stream["url"].replace("/music/", "/music/x"))
            assert whole.status_code == 200 and whole.headers["content-type"] == "audio/mpeg"
            assert whole.content == (folder / "Queen - Bohemian Rhapsody.mp3").read_bytes()
            assert part.status_code == 206 and part.content == whole.content[10:20]
            assert wrong.status_code == 404
            recognizer.text = "play abbey road"
            answer = await brain.recognize(event()).answer()
            assert answer.directives[0].speech == "Playing Come Together."
            token = answer.directives[1].payload["audioItem"]["stream"]["token"]
            nearly = await brain.on_event(event("AudioPlayer.PlaybackNearlyFinished", token, "PLAYING"))
            (enqueue,) = nearly.directives
            assert enqueue.payload["playBehavior"] == "ENQUEUE"
            assert enqueue.payload["audioItem"]["stream"]["expectedPreviousToken"] == token
            nxt = await brain.on_event(event("PlaybackController.NextCommandIssued", token, "PLAYING"))
            next_token = nxt.directives[0].payload["audioItem"]["stream"]["token"]
            assert next_token == enqueue.payload["audioItem"]["stream"]["token"]
            paused = event(token=token, activity="STOPPED")
            paused["context"][0]["payload"]["offsetInMilliseconds"] = 1234
            resumed = await brain.on_event({**paused, "event": {"header": {
                "namespace": "PlaybackController", "name": "PlayCommandIssued"}, "payload": {}}})
            assert resumed.directives[0].payload["audioItem"]["stream"]["offsetInMilliseconds"] == 1234
            recognizer.text = "play jazz"
            assert (await brain.recognize(event()).answer()).directives[0].speech.startswith("Sorry")  # type: ignore[union-attr]
    finally:
        await brain.stop()


def test_unsayable_names_stay_out_of_the_grammar(tmp_path: Path) -> None:
    (tmp_path / "Zzyzxqk - Qwxzzy.mp3").write_bytes(tone_mp3())
    (tmp_path / "Queen - Bohemian Rhapsody.mp3").write_bytes(tone_mp3())
    brain = AssistantBrain(AssistantSettings(music_dir=str(tmp_path)))
    assert len(brain.music.tracks) == 2  # type: ignore[union-attr]
    assert brain.language.music_names == ["bohemian rhapsody", "queen"]


def test_bad_assistant_config_names_the_key() -> None:
    from avsd.assistant.brain import create_brain
    from avsd.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^assistant\.locale: no assistant locale 'xx-XX'"):
        create_brain(AssistantSettings(locale="xx-XX"))
    with pytest.raises(ConfigError, match=r"^assistant\.stt_url: "):
        create_brain(AssistantSettings(stt_url="http://whisper:10300"))
