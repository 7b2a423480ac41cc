"""Reply audio for the emulator's Speak directives: espeak-ng -> mono PCM -> lameenc MP3, cached by text.

If espeak-ng is not installed the shipped ``assets/reply.mp3`` (made by :func:`write_fallback_asset`) is used
for every text, so the emulator still answers with decodable MP3 bytes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import subprocess
import wave
from collections import OrderedDict
from io import BytesIO
from pathlib import Path

import lameenc

from avsd.logredact import protect_root_handlers

_log = logging.getLogger(__name__)

ASSET_PATH = Path(__file__).with_name("assets") / "reply.mp3"
FALLBACK_TEXT = "This is the a v s d emulator."
_BITRATE_KBPS = 40
_CACHE_MAX = 32
_cache: OrderedDict[str, bytes] = OrderedDict()


def _espeak_wav(text: str, *, voice: str = "en-us", speed_wpm: int = 165) -> bytes:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng")
    # "--" so a text starting with "-" is not read as an option.
    proc = subprocess.run(
        [exe, "-v", voice, "-s", str(speed_wpm), "--stdout", "--", text],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return proc.stdout


def _wav_to_pcm(wav_bytes: bytes) -> tuple[bytes, int, int]:
    """(pcm, sample_rate, channels). espeak-ng's --stdout WAV has 0xFFFFFFFF sizes; wave copes with that."""
    with wave.open(BytesIO(wav_bytes), "rb") as wav:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        if width != 2:
            raise ValueError(f"espeak-ng produced {8 * width}-bit audio, expected 16-bit")
        pcm = wav.readframes(wav.getnframes())
    # A streamed WAV may declare a bogus length; wave already stops at the real end of data.
    return pcm, rate, channels


def encode_mp3(pcm: bytes, sample_rate: int, channels: int = 1, bitrate_kbps: int = _BITRATE_KBPS) -> bytes:
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bitrate_kbps)
    encoder.set_in_sample_rate(sample_rate)
    encoder.set_channels(channels)
    encoder.set_quality(5)
    return bytes(encoder.encode(pcm)) + bytes(encoder.flush())


def _synthesize_uncached(text: str) -> bytes:
    pcm, rate, channels = _wav_to_pcm(_espeak_wav(text))
    return encode_mp3(pcm, rate, channels)


def fallback_mp3() -> bytes:
    return _read_asset()


@functools.cache
def _read_asset() -> bytes:
    return ASSET_PATH.read_bytes()


def synthesize_mp3(text: str) -> bytes:
    """MP3 bytes speaking ``text`` (blocking: runs espeak-ng; cached). Falls back to the shipped asset."""
    cached = _cache.get(text)
    if cached is not None:
        _cache.move_to_end(text)
        return cached
    try:
        mp3 = _synthesize_uncached(text)
    except (OSError, subprocess.SubprocessError, ValueError, EOFError, wave.Error) as exc:
        _log.warning("espeak-ng unavailable (%s); using the shipped reply.mp3", exc)
        mp3 = fallback_mp3()
    _cache[text] = mp3
    while len(_cache) > _CACHE_MAX:
        _cache.popitem(last=False)
    return mp3


async def synthesize_mp3_async(text: str) -> bytes:
    """:func:`synthesize_mp3` off the event loop (espeak-ng takes ~100 ms)."""
    cached = _cache.get(text)
    if cached is not None:
        return cached
    return await asyncio.to_thread(synthesize_mp3, text)


def write_fallback_asset(path: Path = ASSET_PATH) -> int:
    """Regenerate ``assets/reply.mp3`` (maintainer tool: ``python -m avsd.emulator.speech``)."""
    mp3 = _synthesize_uncached(FALLBACK_TEXT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mp3)
    return len(mp3)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    protect_root_handlers()
    _log.info("wrote %s (%d bytes)", ASSET_PATH, write_fallback_asset())
