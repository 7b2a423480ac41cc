"""Attachment memory caps (issue 8 defect 3): per attachment, in total, and by age.

Reproducers: a binary part that never ends grew the store one-for-one, and the store kept 64 finished
attachments of any size. Now the part that passes a cap fails with AttachmentTooLargeError and frees its
memory; the stream it came on, the connection and every other attachment go on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from avsd.avs.attachments import MIB, AttachmentSettings, AttachmentStore
from avsd.avs.client import ConnectionState
from avsd.avs.messages import Directive
from avsd.avs.multipart import encode_parts, part_header
from avsd.avs.response import DirectiveStreamReader
from avsd.emulator.server import Emulator
from avsd.errors import AttachmentTooLargeError, AvsConnectionError
from tests.avs.conftest import connected_device

KIB = 1024
SMALL = AttachmentSettings(max_bytes=64 * KIB, total_bytes=160 * KIB, max_age_s=30.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reader(store: AttachmentStore, directives: list[Directive], bad: list[str]) -> DirectiveStreamReader:
    return DirectiveStreamReader("b", store, directives.append, lambda message, raw: bad.append(message))


def test_a_never_ending_part_is_capped_and_freed() -> None:
    """The reproducer: 4 MiB of one binary part that never ends, fed in 16 KiB chunks."""
    store = AttachmentStore(SMALL)
    directives: list[Directive] = []
    reader = _reader(store, directives, [])
    reader.feed(part_header("b", [("Content-Type", "application/octet-stream"), ("Content-ID", "<tts>")], first=True))
    peak = 0
    for _ in range(256):
        reader.feed(b"\x55" * (16 * KIB))
        peak = max(peak, store.held_bytes)
    attachment = store.get("tts")
    assert peak <= SMALL.max_bytes, peak
    assert store.held_bytes == 0 and attachment.done
    assert isinstance(attachment.error, AttachmentTooLargeError)
    assert "attachments.max_bytes" in str(attachment.error) and store.refused == 1


async def test_a_reader_of_the_oversized_part_gets_the_error() -> None:
    store = AttachmentStore(SMALL)
    attachment = store.open("cid-1")
    got: list[bytes] = []

    async def read() -> None:
        async for chunk in attachment:
            got.append(chunk)

    task = asyncio.create_task(read())
    attachment.feed(b"a" * (60 * KIB))
    await asyncio.sleep(0)
    attachment.feed(b"b" * (8 * KIB))  # 68 KiB > 64 KiB
    with pytest.raises(AttachmentTooLargeError):
        await asyncio.wait_for(task, 2)
    assert got == [b"a" * (60 * KIB)]


def test_the_stream_goes_on_after_an_oversized_part() -> None:
    """A too-large part in the middle of a body: the directives after it are still delivered."""
    store = AttachmentStore(SMALL)
    directives: list[Directive] = []
    bad: list[str] = []
    speak = Directive.new("SpeechSynthesizer", "Speak", {"token": "t", "url": "cid:big", "format": "AUDIO_MPEG"})
    after = Directive.new("Speaker", "SetVolume", {"volume": 10})
    body = encode_parts(
        "b",
        [
            ([("Content-Type", "application/json")], speak.to_json()),
            ([("Content-Type", "application/octet-stream"), ("Content-ID", "<big>")], b"\x01" * (200 * KIB)),
            ([("Content-Type", "application/octet-stream"), ("Content-ID", "<ok>")], b"\x02" * (10 * KIB)),
            ([("Content-Type", "application/json")], after.to_json()),
        ],
    )
    reader = _reader(store, directives, bad)
    for i in range(0, len(body), 4096):
        reader.feed(body[i : i + 4096])
    reader.finish()
    assert [d.qualified_name for d in directives] == ["SpeechSynthesizer.Speak", "Speaker.SetVolume"]
    assert not bad
    assert isinstance(store.get("big").error, AttachmentTooLargeError)
    ok = store.get("ok")
    assert ok.done and ok.error is None and ok.size == 10 * KIB


def test_total_cap_evicts_finished_attachments_oldest_first() -> None:
    store = AttachmentStore(SMALL)
    for name in ("a", "b", "c"):
        entry = store.open(name)
        entry.feed(b"x" * (50 * KIB))
        entry.finish()
    assert store.held_bytes == 150 * KIB
    growing = store.open("d")
    growing.feed(b"y" * (40 * KIB))  # 190 KiB > 160 KiB: "a" (the oldest finished) goes
    assert "a" not in store and all(name in store for name in ("b", "c", "d"))
    assert store.held_bytes == 140 * KIB and growing.error is None
    # A directive that asks for the evicted attachment fails at once instead of waiting forever.
    late = store.get("a")
    assert late.done and isinstance(late.error, AttachmentTooLargeError)


def test_total_cap_fails_the_growing_one_when_nothing_finished_can_go() -> None:
    store = AttachmentStore(SMALL)
    first, second, third = store.open("p1"), store.open("p2"), store.open("p3")
    first.feed(b"1" * (60 * KIB))
    second.feed(b"2" * (60 * KIB))
    third.feed(b"3" * (30 * KIB))
    third.feed(b"3" * (30 * KIB))  # 180 KiB > 160 KiB, nothing finished to evict
    assert isinstance(third.error, AttachmentTooLargeError) and "attachments.total_bytes" in str(third.error)
    assert first.error is None and second.error is None
    assert store.held_bytes == 120 * KIB


def test_finished_attachments_expire_by_age() -> None:
    clock = Clock()
    store = AttachmentStore(SMALL, clock=clock)
    old = store.open("old")
    old.feed(b"o" * KIB)
    old.finish()
    store.get("probe")  # the store notices "old" finished now
    clock.now += SMALL.max_age_s - 1
    assert "old" in store
    clock.now += 2
    store.get("another")
    assert "old" not in store and store.evicted == 1
    # A reader that already held it still reads every byte: eviction forgets, it does not break.
    assert old.error is None and old.size == KIB


def test_count_bound_still_applies() -> None:
    store = AttachmentStore(AttachmentSettings(max_entries=2))
    first = store.open("1")
    store.open("2")
    store.open("3")
    assert "1" not in store and isinstance(first.error, AvsConnectionError)


async def test_oversized_speak_fails_alone_over_real_http2(tmp_path: Path, emulator: Emulator) -> None:
    """Against the emulator: a 1 MiB attachment with a 256 KiB cap fails; the connection and a later one live."""
    async with connected_device(tmp_path, emulator, start=False) as device:
        device.client.attachments = AttachmentStore(AttachmentSettings(max_bytes=256 * KIB, total_bytes=MIB))
        device.task = asyncio.create_task(device.client.run(), name="client-under-test")
        await device.client.wait_connected(10)
        big = Directive.new("SpeechSynthesizer", "Speak", {"token": "t1", "url": "cid:big", "format": "AUDIO_MPEG"})
        await emulator.push_directive(big, {"big": bytes(range(256)) * 4096})
        await device.directive("SpeechSynthesizer.Speak")
        attachment = device.client.attachments.get("big")
        with pytest.raises(AttachmentTooLargeError):
            await asyncio.wait_for(attachment.read_all(), 10)
        small = Directive.new("SpeechSynthesizer", "Speak", {"token": "t2", "url": "cid:ok", "format": "AUDIO_MPEG"})
        await emulator.push_directive(small, {"ok": b"ID3" + b"\x00" * 5000})
        audio = await asyncio.wait_for(device.client.attachments.get("ok").read_all(), 10)
        assert audio == b"ID3" + b"\x00" * 5000
        assert device.client.state is ConnectionState.CONNECTED and device.client.connect_count == 1


def test_an_empty_store_is_truthy() -> None:
    """``attachments or AttachmentStore()`` (AvsClient) must keep the configured store even while it is empty:
    a ``__len__`` once made the client feed a second, default-capped store that no player read from."""
    store = AttachmentStore(SMALL)
    assert store and not hasattr(store, "__len__")
