"""Opus for Recognize (avsd/audio/opus.py): packet sizes, TOC parsing, stream splitting and a speech round trip
through the real libopus (via opuslib-next)."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator

import numpy as np
import pytest

from avsd.audio.frames import FRAME_BYTES, SAMPLE_RATE
from avsd.audio.opus import (
    PACKET_PCM_BYTES,
    OpusEncoder,
    OpusStreamDecoder,
    OpusStreamError,
    OpusUnavailableError,
    detect_packet_size,
    encode_frames,
    packet_bytes,
    packet_duration_tenths_ms,
    require_opus,
)
from avsd.dialog import DialogSettings, Initiator, recognize_event
from avsd.errors import ConfigError
from avsd.root import select_engine
from avsd.wake.base import WakeSettings
from tests.harness import SPEECH, fixture_pcm
from tests.wake.helpers import feed

WAKE = "alexa-what-time-is-it"


def _encode(pcm: bytes, bitrate: int) -> list[bytes]:
    encoder = OpusEncoder(bitrate)
    return encoder.feed(pcm) + encoder.flush()


def _decode(stream: bytes, chunk: int | None = None) -> tuple[bytes, OpusStreamDecoder]:
    decoder = OpusStreamDecoder()
    out = bytearray()
    step = chunk or len(stream) or 1
    for offset in range(0, len(stream), step):
        out += decoder.feed(stream[offset : offset + step])
    out += decoder.finish()
    return bytes(out), decoder


def _aligned(reference: bytes, decoded: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The two signals lined up: Opus delays its output by the encoder's look-ahead (6.5 ms at 16 kHz)."""
    a = np.frombuffer(reference, "<i2").astype(np.float64)
    b = np.frombuffer(decoded, "<i2").astype(np.float64)
    n = min(len(a), len(b))
    delay = max(range(0, 400), key=lambda k: float(np.dot(a[: n - k], b[k:n])))
    return a[: n - delay], b[delay:n]


@pytest.mark.parametrize(("bitrate", "size"), [(32000, 80), (64000, 160)])
def test_packet_bytes_follow_the_codec_table(bitrate: int, size: int) -> None:
    assert packet_bytes(bitrate) == size


def test_other_bitrates_are_refused() -> None:
    with pytest.raises(ValueError, match="32000"):
        packet_bytes(48000)


@pytest.mark.parametrize(
    ("packet", "tenths_ms"),
    [
        (bytes([9 << 3 | 0]), 200),  # SILK WB 20 ms, one frame
        (bytes([9 << 3 | 3, 0x41]), 200),  # the same, code 3 with padding (what hard CBR makes)
        (bytes([8 << 3 | 1]), 200),  # SILK WB 10 ms, two frames
        (bytes([8 << 3 | 0]), 100),
        (bytes([11 << 3 | 0]), 600),
        (bytes([13 << 3 | 2]), 400),  # hybrid 20 ms x2
        (bytes([31 << 3 | 0]), 200),  # CELT FB 20 ms
        (bytes([16 << 3 | 3, 8]), 200),  # CELT 2.5 ms x8
        (bytes([9 << 3 | 3]), None),  # code 3 without its count byte
        (bytes([9 << 3 | 3, 0]), None),  # zero frames
        (b"", None),
    ],
)
def test_toc_duration(packet: bytes, tenths_ms: int | None) -> None:
    assert packet_duration_tenths_ms(packet) == tenths_ms


@pytest.mark.parametrize("bitrate", [32000, 64000])
def test_every_packet_is_exactly_the_cbr_size_and_the_tail_is_padded(bitrate: int) -> None:
    pcm = fixture_pcm(WAKE)
    frames = len(pcm) // FRAME_BYTES  # the device's 10 ms frames; an odd count leaves half a packet
    packets = _encode(pcm[: frames * FRAME_BYTES], bitrate)
    assert {len(p) for p in packets} == {packet_bytes(bitrate)}
    assert len(packets) == (frames + 1) // 2


def test_encoder_pairs_10ms_frames_whatever_the_chunking() -> None:
    pcm = fixture_pcm(WAKE)[: 51 * FRAME_BYTES]  # odd: the last packet is half silence
    encoder = OpusEncoder()
    by_frame = [p for o in range(0, len(pcm), FRAME_BYTES) for p in encoder.feed(pcm[o : o + FRAME_BYTES])]
    assert len(by_frame) == 25
    assert len(encoder.flush()) == 1
    assert encoder.flush() == []
    at_once = OpusEncoder()
    assert at_once.feed(pcm) == by_frame  # the codec is deterministic: same input, same packets


def test_encode_wants_exactly_20ms() -> None:
    with pytest.raises(ValueError, match="640"):
        OpusEncoder().encode(bytes(FRAME_BYTES))


async def test_encode_frames_yields_each_packet_on_its_own() -> None:
    pcm = fixture_pcm(WAKE)[: 7 * FRAME_BYTES]

    async def frames() -> AsyncIterator[bytes]:
        for offset in range(0, len(pcm), FRAME_BYTES):
            yield pcm[offset : offset + FRAME_BYTES]

    async with asyncio.timeout(5):
        chunks = [chunk async for chunk in encode_frames(frames(), OpusEncoder(64000))]
    assert [len(c) for c in chunks] == [160] * 4


@pytest.mark.parametrize("bitrate", [32000, 64000])
def test_round_trip_keeps_the_speech(bitrate: int) -> None:
    pcm = fixture_pcm(WAKE)
    decoded, decoder = _decode(b"".join(_encode(pcm, bitrate)))
    assert decoder.packet_bytes == packet_bytes(bitrate)
    assert len(decoded) == decoder.packets * PACKET_PCM_BYTES >= len(pcm)
    a, b = _aligned(pcm, decoded)
    correlation = float(np.corrcoef(a, b)[0, 1])
    assert correlation > 0.9, correlation
    rms_ratio = float(b.std() / a.std())
    assert 0.8 < rms_ratio < 1.2, rms_ratio


def test_the_wake_word_is_still_heard_in_decoded_audio() -> None:
    pcm = fixture_pcm(WAKE)
    decoded, _ = _decode(b"".join(_encode(pcm, 32000)))
    engine = select_engine(WakeSettings())
    detections = feed(engine, decoded)
    assert detections, "no wake word in the decoded audio"
    end = detections[0].end_index
    assert SPEECH[WAKE]["alexa_start"] < end < SPEECH[WAKE]["command_end"]


@pytest.mark.parametrize("chunk", [1, 7, 80, 81, 160, 1000])
@pytest.mark.parametrize("bitrate", [32000, 64000])
def test_stream_decoder_takes_any_chunking(bitrate: int, chunk: int) -> None:
    stream = b"".join(_encode(fixture_pcm(WAKE)[: 40 * FRAME_BYTES], bitrate))
    whole, _ = _decode(stream)
    pieces, decoder = _decode(stream, chunk)
    assert pieces == whole
    assert decoder.packet_bytes == packet_bytes(bitrate)


@pytest.mark.parametrize("packets", [1, 2, 3])
def test_short_uploads_are_sized_at_the_end(packets: int) -> None:
    stream = b"".join(_encode(fixture_pcm(WAKE)[: packets * PACKET_PCM_BYTES], 32000))
    decoded, decoder = _decode(stream)
    assert decoder.packet_bytes == 80 and len(decoded) == packets * PACKET_PCM_BYTES


def test_an_empty_upload_decodes_to_nothing() -> None:
    assert _decode(b"")[0] == b""


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (bytes(range(256)) * 4, "not 20 ms mono"),  # not Opus at all
        (bytes(640), "not 20 ms mono"),  # digital silence as PCM: TOC 0 is SILK NB 10 ms
        (bytes(79), "not 20 ms mono"),  # shorter than one packet
    ],
)
def test_streams_that_are_not_cbr_opus_are_refused(stream: bytes, message: str) -> None:
    with pytest.raises(OpusStreamError, match=message):
        _decode(stream)


def test_a_cut_off_last_packet_is_refused() -> None:
    stream = b"".join(_encode(fixture_pcm(WAKE)[: 20 * PACKET_PCM_BYTES], 32000))
    with pytest.raises(OpusStreamError, match="ends inside a packet"):
        _decode(stream[:-30])


def test_a_bad_packet_later_in_the_stream_is_refused() -> None:
    packets = _encode(fixture_pcm(WAKE)[: 20 * PACKET_PCM_BYTES], 32000)
    packets[12] = bytes([8 << 3]) + packets[12][1:]  # a 10 ms TOC inside a 20 ms stream
    with pytest.raises(OpusStreamError, match="packet 12"):
        _decode(b"".join(packets))


def test_random_garbage_never_crashes_the_decoder() -> None:
    rng = random.Random(4)
    for _ in range(200):
        stream = rng.randbytes(rng.choice([80, 160, 640, 1280]))
        try:
            pcm, _ = _decode(stream)
        except OpusStreamError:
            continue
        assert len(pcm) % PACKET_PCM_BYTES == 0  # garbage that happens to parse still decodes to whole packets


def test_detect_waits_for_enough_packets() -> None:
    head = b"".join(_encode(fixture_pcm(WAKE)[: 4 * PACKET_PCM_BYTES], 32000))
    assert detect_packet_size(head) is None
    assert detect_packet_size(head, final=True) == 80


def test_missing_binding_is_a_config_error_with_the_install_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opuslib_next", None)  # import now raises ImportError
    with pytest.raises(OpusUnavailableError) as info:
        require_opus()
    assert isinstance(info.value, ConfigError) and info.value.key == "dialog.audio_format"
    assert "apt install libopus0" in str(info.value) and "pip install opuslib-next" in str(info.value)


def test_missing_libopus_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_libopus(name: str, *args: object, **kwargs: object) -> object:
        if name == "opuslib_next":
            raise Exception("Could not find Opus library. Make sure it is installed.")  # what the binding raises
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_libopus)
    with pytest.raises(OpusUnavailableError, match="Could not find Opus library"):
        OpusEncoder()


def test_recognize_payload_names_the_format() -> None:
    event = recognize_event(dialog_request_id="d", initiator=Initiator.TAP, profile="NEAR_FIELD", audio_format="OPUS")
    assert event.payload["format"] == "OPUS"
    assert DialogSettings().audio_format == "AUDIO_L16_RATE_16000_CHANNELS_1"


def test_sample_rate_is_what_avs_wants() -> None:
    assert SAMPLE_RATE == 16000 and PACKET_PCM_BYTES == 2 * FRAME_BYTES
