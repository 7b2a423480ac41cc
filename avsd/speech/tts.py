"""Text to speech: espeak-ng -> 16-bit PCM -> lameenc MP3 (the Speak attachment format), cached by text.

:class:`EspeakTts` has a configurable voice and rate. The module-level functions keep the emulator's old API
(default voice). If espeak-ng is not installed the shipped ``assets/reply.mp3`` (made by
:func:`write_fallback_asset`) is used for every text, so a server still answers with decodable MP3 bytes, and a
warning says what to install.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import subprocess
import wave
from collections import OrderedDict
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Protocol

import lameenc

_log = logging.getLogger(__name__)

ASSET_PATH = Path(__file__).parent.parent / "emulator" / "assets" / "reply.mp3"
FALLBACK_TEXT = "This is the a v s d emulator."
_BITRATE_KBPS = 40
_CACHE_MAX = 64


@dataclass(frozen=True, slots=True)
class TtsSettings:
    """The assistant's voice (``[assistant]`` section of the config)."""

    voice: str = field(default="en-us", metadata={"help": "espeak-ng voice (espeak-ng --voices), e.g. en-us+f3"})
    rate_wpm: int = field(default=165, metadata={"help": "speaking rate, words per minute", "min": 80, "max": 450})


@dataclass(frozen=True, slots=True)
class Pcm:
    """Mono or interleaved 16-bit little-endian PCM."""

    data: bytes
    rate: int
    channels: int = 1

    @property
    def seconds(self) -> float:
        return len(self.data) / (2 * self.channels * self.rate) if self.rate else 0.0


class SpeechSynthesizer(Protocol):
    """What a brain needs from a TTS engine (espeak-ng here, a Wyoming server in :mod:`avsd.speech.wyoming`)."""

    async def mp3(self, text: str) -> bytes: ...


class TtsUnavailableError(RuntimeError):
    """No TTS engine: the message says what to install."""


def espeak_pcm(text: str, *, voice: str = "en-us", rate_wpm: int = 165) -> Pcm:
    """Blocking: run espeak-ng. Raises TtsUnavailableError if it is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise TtsUnavailableError("espeak-ng is not installed (apt-get install espeak-ng)")
    # "--" so a text starting with "-" is not read as an option.
    proc = subprocess.run(
        [exe, "-v", voice, "-s", str(rate_wpm), "--stdout", "--", text],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return _wav_to_pcm(proc.stdout)


def _wav_to_pcm(wav_bytes: bytes) -> Pcm:
    """espeak-ng's --stdout WAV has 0xFFFFFFFF sizes; wave copes with that and stops at the real end of data."""
    with wave.open(BytesIO(wav_bytes), "rb") as wav:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        if width != 2:
            raise ValueError(f"espeak-ng produced {8 * width}-bit audio, expected 16-bit")
        return Pcm(wav.readframes(wav.getnframes()), rate, channels)


def encode_mp3(pcm: bytes, sample_rate: int, channels: int = 1, bitrate_kbps: int = _BITRATE_KBPS) -> bytes:
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bitrate_kbps)
    encoder.set_in_sample_rate(sample_rate)
    encoder.set_channels(channels)
    encoder.set_quality(5)
    return bytes(encoder.encode(pcm)) + bytes(encoder.flush())


class EspeakTts:
    """espeak-ng with a fixed voice and rate; MP3 results cached by text (replies repeat a lot)."""

    def __init__(self, settings: TtsSettings | None = None) -> None:
        self.settings = settings or TtsSettings()
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    def pcm(self, text: str) -> Pcm:
        return espeak_pcm(text, voice=self.settings.voice, rate_wpm=self.settings.rate_wpm)

    def mp3_blocking(self, text: str) -> bytes:
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        try:
            pcm = self.pcm(text)
            mp3 = encode_mp3(pcm.data, pcm.rate, pcm.channels)
        except (OSError, subprocess.SubprocessError, ValueError, EOFError, wave.Error, TtsUnavailableError) as exc:
            _log.warning("espeak-ng failed (%s); using the shipped reply.mp3", exc)
            return fallback_mp3()
        self._cache[text] = mp3
        while len(self._cache) > _CACHE_MAX:
            self._cache.popitem(last=False)
        return mp3

    async def mp3(self, text: str) -> bytes:
        """MP3 bytes speaking ``text``, off the event loop (espeak-ng takes ~100 ms) unless cached."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        return await asyncio.to_thread(self.mp3_blocking, text)


_default = EspeakTts()


def fallback_mp3() -> bytes:
    return _read_asset()


@functools.cache
def _read_asset() -> bytes:
    return ASSET_PATH.read_bytes()


def synthesize_mp3(text: str) -> bytes:
    """MP3 bytes speaking ``text`` with the default voice (blocking; cached). Falls back to the shipped asset."""
    return _default.mp3_blocking(text)


async def synthesize_mp3_async(text: str) -> bytes:
    return await _default.mp3(text)


def write_fallback_asset(path: Path = ASSET_PATH) -> int:
    """Regenerate ``assets/reply.mp3`` (maintainer tool: ``python -m avsd.speech.tts``)."""
    pcm = espeak_pcm(FALLBACK_TEXT)
    mp3 = encode_mp3(pcm.data, pcm.rate, pcm.channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mp3)
    return len(mp3)


if __name__ == "__main__":
    from avsd.logredact import protect_root_handlers

    logging.basicConfig(level=logging.INFO)
    protect_root_handlers()
    _log.info("wrote %s (%d bytes)", ASSET_PATH, write_fallback_asset())
