"""Focus end to end (§7): music from a local HTTP server plays through the real daemon while a real spoken dialog
(wake word -> Recognize over HTTP/2 -> Speak) happens. With the pause policy the music pauses and resumes where it
was; with the duck policy it gets quieter, and a volume change made while ducked is the volume it comes back at.
The audible effect is read from the content player's WAV file: a constant tone, so loudness is RMS."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from avsd.avs.messages import Directive
from avsd.emulator.scenario import DirectiveSpec, Rule
from avsd.focus import ContentPolicy
from avsd.playback.decode import volume_gain
from avsd.state import DialogState
from tests.agents.media_server import AMPLITUDE, BYTES_PER_S, MediaServer, play_payload, rms, tone_mp3, wav_samples
from tests.agents.test_audio_player import content_wavs, player_events, wait_player_event
from tests.harness import Device, fixture_pcm, room_noise, running_device, with_noise

WAKE = "alexa-what-time-is-it"
TONE_RMS = AMPLITUDE * 32767 / 2**0.5


def names(device: Device) -> list[str]:
    return [r.qualified_name for r in device.emulator.records if r.qualified_name]


async def speak_to(device: Device) -> None:
    await device.source.feed(room_noise(1.0) + with_noise(fixture_pcm(WAKE)) + room_noise(2.0, seed=3))


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_dialog_pauses_music_and_it_resumes_where_it_was(tmp_path: Path) -> None:
    server = MediaServer()
    url = server.add("/music.mp3", tone_mp3(4.0))
    gate = server.gate("/music.mp3", int(1.5 * BYTES_PER_S))
    with server.running():
        async with running_device(tmp_path) as device:
            await device.emulator.push_directive(Directive.new("AudioPlayer", "Play", play_payload("song", url)))
            await wait_player_event(device, "PlaybackStarted", "song")
            await speak_to(device)
            paused = await wait_player_event(device, "PlaybackPaused", "song")
            gate.set()  # the rest of the song is there now, but the player stays paused until the dialog ends
            await device.emulator.wait_for_event("SpeechSynthesizer.SpeechFinished", timeout=15)
            resumed = await wait_player_event(device, "PlaybackResumed", "song")
            await wait_player_event(device, "PlaybackFinished", "song")
    order = [n for n in names(device) if n.startswith(("AudioPlayer.Playback", "SpeechSynthesizer."))]
    assert order == [
        "AudioPlayer.PlaybackStarted",
        "AudioPlayer.PlaybackNearlyFinished",
        "AudioPlayer.PlaybackPaused",
        "SpeechSynthesizer.SpeechStarted",
        "SpeechSynthesizer.SpeechFinished",
        "AudioPlayer.PlaybackResumed",
        "AudioPlayer.PlaybackFinished",
    ], order
    assert resumed["offsetInMilliseconds"] == paused["offsetInMilliseconds"] > 0
    # Recognize carried the music's state (context), and nothing was lost or repeated: the whole 4 s, once.
    recognize = next(r for r in device.emulator.records if r.qualified_name == "SpeechRecognizer.Recognize")
    states = {c["header"]["name"]: c["payload"] for c in recognize.event["context"]}
    assert states["PlaybackState"]["token"] == "song"
    assert states["PlaybackState"]["playerActivity"] in ("PLAYING", "PAUSED")
    rate, samples = wav_samples(content_wavs(device)[0])
    assert abs(len(samples) / rate - 4.0) < 0.1


async def test_dialog_ducks_music_and_a_volume_change_while_ducked_is_kept(tmp_path: Path) -> None:
    duck = [("focus.content_policy", str(ContentPolicy.DUCK)), ("focus.duck_level", 20)]
    server = MediaServer()
    url = server.add("/music.mp3", tone_mp3(6.0))
    before_dialog = server.gate("/music.mp3", int(1.5 * BYTES_PER_S))
    after_dialog = server.gate("/music.mp3", int(3.5 * BYTES_PER_S))
    async with running_device(tmp_path, settings=duck) as device:
        # A slow cloud: the dialog stays in THINKING long enough for the ducked part to be played.
        device.emulator.add_rule(
            Rule(match="SpeechRecognizer.Recognize", times=1, delay_s=3.0,
                 directives=(DirectiveSpec("SpeechSynthesizer", "Speak", speech="Here you go."),))
        )
        speaker = device.daemon.speaker
        with server.running():
            await device.emulator.push_directive(Directive.new("AudioPlayer", "Play", play_payload("song", url)))
            await wait_player_event(device, "PlaybackStarted", "song")
            await speak_to(device)
            await until(lambda: speaker.volume.ducked)
            await device.emulator.push_directive(Directive.new("Speaker", "SetVolume", {"volume": 80}))
            # (VolumeChanged itself waits: events go one at a time, and the Recognize has no answer yet, §1.3.)
            await until(lambda: speaker.volume.user_volume == 80)
            assert speaker.volume.ducked and speaker.volume.effective == 20
            before_dialog.set()
            await until(lambda: device.daemon.audio_player.offset_ms >= 2300)
            assert speaker.volume.ducked, "the dialog ended before the ducked part was played"
            await device.wait_state(DialogState.IDLE, timeout=15, after=1)
            await until(lambda: not speaker.volume.ducked)
            after_dialog.set()
            await wait_player_event(device, "PlaybackFinished", "song")
            changed = await device.emulator.wait_for_event("Speaker.VolumeChanged")
            context = speaker.context()["payload"]
    assert changed.event["event"]["payload"] == {"volume": 80, "muted": False}
    assert context == {"volume": 80, "muted": False}
    assert "AudioPlayer.PlaybackPaused" not in names(device)  # ducked, not paused
    assert [n for n, _ in player_events(device, "song")][-1] == "PlaybackFinished"
    rate, samples = wav_samples(content_wavs(device)[0])
    assert abs(len(samples) / rate - 6.0) < 0.1
    for (start, end), volume in (((0.2, 0.8), 50), ((1.4, 2.2), 20), ((3.8, 5.8), 80)):
        level = rms(samples, rate, start, end)
        expected = TONE_RMS * volume_gain(volume)
        assert abs(level - expected) < 0.2 * expected, (start, end, level, expected)
