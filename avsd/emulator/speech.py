"""Kept for callers of the old path: the emulator's reply audio now comes from :mod:`avsd.speech.tts`."""

import shutil
import subprocess

from avsd.speech.tts import (
    ASSET_PATH,
    FALLBACK_TEXT,
    encode_mp3,
    fallback_mp3,
    synthesize_mp3,
    synthesize_mp3_async,
    write_fallback_asset,
)

__all__ = [
    "ASSET_PATH",
    "FALLBACK_TEXT",
    "encode_mp3",
    "fallback_mp3",
    "synthesize_mp3",
    "synthesize_mp3_async",
    "write_fallback_asset",
]


def _espeak_wav(text: str, *, voice: str = "en-us", speed_wpm: int = 165) -> bytes:
    """espeak-ng's WAV bytes (avsd.session_audio's text-to-speech). FileNotFoundError if it is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng")
    # "--" so a text starting with "-" is not read as an option.
    proc = subprocess.run(
        [exe, "-v", voice, "-s", str(speed_wpm), "--stdout", "--", text], capture_output=True, check=True, timeout=30
    )
    return proc.stdout
