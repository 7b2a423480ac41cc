"""Speaker: amixer command lines and persistence (pure / files), then SetVolume, AdjustVolume and SetMute pushed by
the emulator over HTTP/2: the events, the VolumeState context, what the WAV sink played, and a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from avsd.agents.speaker import SpeakerSettings, amixer_command, load_volume, write_json_state
from avsd.avs.messages import Directive
from avsd.playback.decode import volume_gain
from tests.agents.media_server import AMPLITUDE, play_payload, rms, tone_mp3, wav_samples
from tests.agents.test_audio_player import content_wavs, wait_player_event
from tests.harness import running_device

TONE_RMS = AMPLITUDE * 32767 / 2**0.5


@pytest.mark.parametrize(
    ("settings", "volume", "muted", "expected"),
    [
        (SpeakerSettings(alsa_mixer_control="PCM"), 42, False, ["amixer", "-q", "sset", "PCM", "42%", "unmute"]),
        (SpeakerSettings(alsa_mixer_control="Master", alsa_card="1", amixer_path="/usr/bin/amixer"), 0, True,
         ["/usr/bin/amixer", "-q", "-c", "1", "sset", "Master", "0%", "mute"]),
        (SpeakerSettings(alsa_mixer_control="Speaker"), 150, False, ["amixer", "-q", "sset", "Speaker", "100%",
                                                                      "unmute"]),
    ],
)
def test_amixer_command(settings: SpeakerSettings, volume: int, muted: bool, expected: list[str]) -> None:
    assert amixer_command(settings, volume, muted) == expected


@pytest.mark.parametrize(
    ("content", "volume", "muted"),
    [
        (None, 35, False),  # no file: the initial volume
        ('{"volume": 70, "muted": true}', 70, True),
        ('{"volume": 700}', 35, False),  # out of range: ignored
        ("not json", 35, False),
        ("[1, 2]", 35, False),
    ],
)
def test_load_volume(tmp_path: Path, content: str | None, volume: int, muted: bool) -> None:
    path = tmp_path / "speaker.json"
    if content is not None:
        path.write_text(content)
    loaded = load_volume(path, 35)
    assert (loaded.user_volume, loaded.muted) == (volume, muted)


def test_write_json_state_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "speaker.json"
    write_json_state(path, {"volume": 1, "muted": False})
    write_json_state(path, {"volume": 2, "muted": True})
    assert load_volume(path, 50).user_volume == 2
    assert [p.name for p in path.parent.iterdir()] == ["speaker.json"]  # no temp files left


async def test_volume_directives_events_context_audible_effect_and_restart(tmp_path: Path) -> None:
    async def push(name: str, payload: dict[str, object]) -> None:
        await device.emulator.push_directive(Directive.new("Speaker", name, payload))

    async with running_device(tmp_path) as device:
        await push("SetVolume", {"volume": 40})
        first = await device.emulator.wait_for_event("Speaker.VolumeChanged")
        await push("AdjustVolume", {"volume": -20})
        second = await device.emulator.wait_for_event("Speaker.VolumeChanged", count=2)
        await push("AdjustVolume", {"volume": 500})  # out of range: ExceptionEncountered, volume unchanged
        error = await device.emulator.wait_for_event("System.ExceptionEncountered")
        await device.emulator.push_directive(
            Directive.new("AudioPlayer", "Play", play_payload("t", "cid:tone")), {"tone": tone_mp3(1.0)}
        )
        await wait_player_event(device, "PlaybackFinished", "t")
        await push("SetMute", {"mute": True})
        muted = await device.emulator.wait_for_event("Speaker.MuteChanged")
        assert device.daemon.content_player.volume == 0
    assert first.event["event"]["payload"] == {"volume": 40, "muted": False}
    assert second.event["event"]["payload"] == {"volume": 20, "muted": False}
    assert error.event["event"]["payload"]["error"]["type"] == "UNEXPECTED_INFORMATION_RECEIVED"
    assert muted.event["event"]["payload"] == {"volume": 20, "muted": True}
    rate, samples = wav_samples(content_wavs(device)[0])
    level, expected = rms(samples, rate, 0.2, 0.8), TONE_RMS * volume_gain(20)
    assert abs(level - expected) < 0.2 * expected, (level, expected)
    # A restart (same state dir, a new emulator): the first SynchronizeState reports the persisted state.
    async with running_device(tmp_path) as device:
        sync = await device.emulator.wait_for_event("System.SynchronizeState")
        states = {c["header"]["name"]: c["payload"] for c in sync.event["context"]}
        assert device.daemon.parts.players.speech.volume == 0  # muted applies to speech too
    assert states["VolumeState"] == {"volume": 20, "muted": True}
