"""Kept for callers of the old path: the emulator's reply audio now comes from :mod:`avsd.speech.tts`."""

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
