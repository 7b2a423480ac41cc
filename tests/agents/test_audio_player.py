"""AudioPlayer: the pure rules (table-driven), then the agent end to end: directives pushed by the emulator over
HTTP/2, music served by a local HTTP server, what the WAV sink wrote as the audible effect."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from avsd.agents.audio_queue import (
    DELAY_ELAPSED,
    INTERVAL_ELAPSED,
    AudioItem,
    ClearBehavior,
    PlayBehavior,
    ProgressTracker,
    accept_play,
    parse_clear_behavior,
    parse_play,
)
from avsd.avs.messages import Directive
from avsd.errors import DirectiveParseError
from tests.agents.media_server import (
    BYTES_PER_S,
    MediaServer,
    closed_port,
    play_payload,
    tone_mp3,
    wav_samples,
)
from tests.harness import Device, running_device

# ----- pure rules ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behavior", "expected", "current", "queued", "accepted"),
    [
        (PlayBehavior.ENQUEUE, "", "a", [], True),
        (PlayBehavior.ENQUEUE, "a", "a", [], True),
        (PlayBehavior.ENQUEUE, "a", "a", ["b"], False),  # must follow the last queued item
        (PlayBehavior.ENQUEUE, "b", "a", ["b"], True),
        (PlayBehavior.ENQUEUE, "x", "a", [], False),
        (PlayBehavior.REPLACE_ENQUEUED, "a", "a", ["b"], True),  # follows the current item
        (PlayBehavior.REPLACE_ENQUEUED, "b", "a", ["b"], False),
        (PlayBehavior.REPLACE_ALL, "zzz", "a", ["b"], True),  # replaces everything: nothing to follow
    ],
)
def test_expected_previous_token(
    behavior: PlayBehavior, expected: str, current: str, queued: list[str], accepted: bool
) -> None:
    item = AudioItem(token="new", url="cid:x", expected_previous_token=expected)
    assert accept_play(behavior, item, current, queued) is accepted


def _play(payload: dict[str, Any]) -> Directive:
    return Directive.new("AudioPlayer", "Play", payload)


def test_parse_play_reads_every_field_and_defaults_to_enqueue() -> None:
    payload = play_payload("t1", "https://x/a.pls", offset_ms=1500, expected_previous="t0", delay_ms=10,
                           interval_ms=20)
    del payload["playBehavior"]
    behavior, item = parse_play(_play(payload))
    assert behavior is PlayBehavior.ENQUEUE
    assert item == AudioItem(token="t1", url="https://x/a.pls", audio_item_id="id-t1", offset_ms=1500,
                             expected_previous_token="t0", progress_delay_ms=10, progress_interval_ms=20)


@pytest.mark.parametrize(
    "payload",
    [
        {"playBehavior": "SHUFFLE", "audioItem": {"stream": {"url": "cid:a", "token": "t"}}},
        {"playBehavior": "ENQUEUE"},
        {"audioItem": {"stream": {"url": "cid:a"}}},
        {"audioItem": {"stream": {"url": "cid:a", "token": "t", "offsetInMilliseconds": -5}}},
        {"audioItem": {"stream": {"url": "cid:a", "token": "t", "progressReport": 7}}},
    ],
)
def test_bad_play_payloads_raise_parse_errors(payload: dict[str, Any]) -> None:
    with pytest.raises(DirectiveParseError):
        parse_play(_play(payload))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [({}, ClearBehavior.CLEAR_ENQUEUED), ({"clearBehavior": "CLEAR_ALL"}, ClearBehavior.CLEAR_ALL)],
)
def test_clear_behavior(payload: dict[str, Any], expected: ClearBehavior) -> None:
    assert parse_clear_behavior(Directive.new("AudioPlayer", "ClearQueue", payload)) is expected


@pytest.mark.parametrize(
    ("delay", "interval", "start", "offsets", "expected"),
    [
        (500, 1000, 0, [400, 600, 1000, 3100],
         [[], [(DELAY_ELAPSED, 500)], [(INTERVAL_ELAPSED, 1000)],
          [(INTERVAL_ELAPSED, 2000), (INTERVAL_ELAPSED, 3000)]]),
        (1500, 1000, 0, [2500], [[(INTERVAL_ELAPSED, 1000), (DELAY_ELAPSED, 1500), (INTERVAL_ELAPSED, 2000)]]),
        (500, 1000, 2500, [2600, 3000], [[], [(INTERVAL_ELAPSED, 3000)]]),  # started past the delay
        (0, 0, 0, [99999], [[]]),  # no progress reports asked for
        (1000, 0, 0, [1000, 5000], [[(DELAY_ELAPSED, 1000)], []]),  # the delay report comes once
    ],
)
def test_progress_reports(
    delay: int, interval: int, start: int, offsets: list[int], expected: list[list[tuple[str, int]]]
) -> None:
    tracker = ProgressTracker(delay, interval, start)
    assert [tracker.due(offset) for offset in offsets] == expected


# ----- end to end ----------------------------------------------------------------------------------------------


def player_events(device: Device, token: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for record in device.emulator.records:
        name = record.qualified_name or ""
        if name.startswith("AudioPlayer."):
            payload = record.event["event"]["payload"]
            if token is None or payload.get("token") == token:
                out.append((name.split(".", 1)[1], payload))
    return out


async def wait_player_event(
    device: Device, name: str, token: str | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            for event, payload in player_events(device, token):
                if event == name:
                    return payload
            await asyncio.sleep(0.02)


def content_wavs(device: Device) -> list[Path]:
    return sorted(device.out_dir.glob("content-*.wav"), key=lambda p: int(p.stem.split("-")[1]))


def duration_s(path: Path) -> float:
    rate, samples = wav_samples(path)
    return len(samples) / rate


@pytest.mark.parametrize(
    ("playlist_path", "content_type", "dead", "make_body"),
    [
        ("/radio.pls", "audio/x-scpls", "closed-port",
         lambda dead, good: f"[playlist]\nNumberOfEntries=2\nFile1={dead}\nFile2={good}\n"),
        ("/radio.m3u8", "application/vnd.apple.mpegurl", "404", lambda dead, good: f"#EXTM3U\n{dead}\n{good}\n"),
        ("/radio.m3u", "text/plain", "404", lambda dead, good: f"{dead}\n{good}\n"),
    ],
)
async def test_playlist_whose_first_entry_is_dead_plays_the_next(
    tmp_path: Path, playlist_path: str, content_type: str, dead: str, make_body: Any
) -> None:
    server = MediaServer()
    good = server.add("/good.mp3", tone_mp3(1.0))
    dead_url = f"http://127.0.0.1:{closed_port()}/gone.mp3" if dead == "closed-port" else server.base + "/gone.mp3"
    url = server.add(playlist_path, make_body(dead_url, good).encode(), content_type)
    with server.running():
        async with running_device(tmp_path) as device:
            await device.emulator.push_directive(Directive.new("AudioPlayer", "Play", play_payload("radio", url)))
            started = await wait_player_event(device, "PlaybackStarted", "radio")
            await wait_player_event(device, "PlaybackFinished", "radio")
            context = device.daemon.audio_player.context()["payload"]
    assert started == {"token": "radio", "offsetInMilliseconds": 0}
    assert [name for name, _ in player_events(device)] == ["PlaybackStarted", "PlaybackNearlyFinished",
                                                           "PlaybackFinished"]
    assert server.routes["/good.mp3"].hits == 1
    wavs = content_wavs(device)
    assert len(wavs) == 1 and abs(duration_s(wavs[0]) - 1.0) < 0.1  # the second entry, whole
    assert context["playerActivity"] == "FINISHED" and context["token"] == "radio"


async def test_every_play_behavior_clear_queue_stop_progress_and_offset(tmp_path: Path) -> None:
    server = MediaServer()
    a_url = server.add("/a.mp3", tone_mp3(2.5))
    gate_a = server.gate("/a.mp3", int(1.25 * BYTES_PER_S))
    b_url = server.add("/b.mp3", tone_mp3(20.0), rate=BYTES_PER_S)  # a live stream: plays as long as the test
    short = tone_mp3(1.5)

    async def push(name: str, payload: dict[str, Any], attachments: dict[str, bytes] | None = None) -> None:
        await device.emulator.push_directive(Directive.new("AudioPlayer", name, payload), attachments)

    async def queued(expected: list[str]) -> None:
        async with asyncio.timeout(5):
            while player.queued_tokens != expected:
                await asyncio.sleep(0.01)

    with server.running():
        async with running_device(tmp_path) as device:
            player = device.daemon.audio_player
            await push("Play", play_payload("a", a_url, delay_ms=500, interval_ms=1000))
            await wait_player_event(device, "PlaybackStarted", "a")
            # ENQUEUE: a wrong expectedPreviousToken is dropped, the right one queues; REPLACE_ENQUEUED replaces.
            await push("Play", play_payload("x", "cid:x", behavior="ENQUEUE", expected_previous="nope"), {"x": short})
            await push("Play", play_payload("b", "cid:b", behavior="ENQUEUE", expected_previous="a"), {"b": short})
            await push("Play", play_payload("c", "cid:c", behavior="ENQUEUE", expected_previous="b"), {"c": short})
            await queued(["b", "c"])
            await push("Play", play_payload("d", "cid:d", behavior="REPLACE_ENQUEUED", expected_previous="a"),
                       {"d": short})
            await queued(["d"])
            await push("ClearQueue", {"clearBehavior": "CLEAR_ENQUEUED"})
            await wait_player_event(device, "PlaybackQueueCleared")
            assert player.queued_tokens == [] and str(player.activity) == "PLAYING"
            # The next item starts 1000 ms in, after a ends.
            await push("Play", play_payload("e", "cid:e", behavior="ENQUEUE", expected_previous="a", offset_ms=1000),
                       {"e": short})
            await queued(["e"])
            gate_a.set()
            assert await wait_player_event(device, "PlaybackStarted", "e") == {"token": "e",
                                                                               "offsetInMilliseconds": 1000}
            await wait_player_event(device, "PlaybackFinished", "e")
            # REPLACE_ALL over a playing item stops it; CLEAR_ALL stops the current one; Stop stops.
            await push("Play", play_payload("f", b_url))
            await wait_player_event(device, "PlaybackStarted", "f")
            await push("Play", play_payload("g", b_url))
            await wait_player_event(device, "PlaybackStarted", "g")
            await push("ClearQueue", {"clearBehavior": "CLEAR_ALL"})
            await wait_player_event(device, "PlaybackStopped", "g")
            await push("Play", play_payload("h", b_url))
            await wait_player_event(device, "PlaybackStarted", "h")
            await push("Stop", {})
            stopped = await wait_player_event(device, "PlaybackStopped", "h")
            context = player.context()["payload"]
            holder = device.daemon.focus.manager.holder
            from avsd.focus import Channel

            content_holder = holder(Channel.CONTENT)

    def names(token: str) -> list[Any]:
        events = player_events(device, token)
        return [(n, p["offsetInMilliseconds"]) if n.startswith("Progress") else n for n, p in events]

    assert names("a") == ["PlaybackStarted", "PlaybackNearlyFinished", (DELAY_ELAPSED, 500),
                          (INTERVAL_ELAPSED, 1000), (INTERVAL_ELAPSED, 2000), "PlaybackFinished"]
    assert names("x") == [] and names("b") == [] and names("c") == [] and names("d") == []
    assert names("e") == ["PlaybackStarted", "PlaybackNearlyFinished", "PlaybackFinished"]
    assert names("f") == ["PlaybackStarted", "PlaybackNearlyFinished", "PlaybackStopped"]
    assert names("g") == ["PlaybackStarted", "PlaybackNearlyFinished", "PlaybackStopped"]
    assert [n for n, _ in player_events(device)].count("PlaybackQueueCleared") == 2
    assert stopped["offsetInMilliseconds"] >= 0
    assert context == {"token": "h", "offsetInMilliseconds": stopped["offsetInMilliseconds"],
                       "playerActivity": "STOPPED"}
    assert content_holder is None  # nothing plays: the Content channel is free
    # Audible effect: a whole (2.5 s), then e from 1000 ms of its 1.5 s.
    wavs = content_wavs(device)
    assert abs(duration_s(wavs[0]) - 2.5) < 0.1
    assert abs(duration_s(wavs[1]) - 0.5) < 0.1
