"""Bespoken ``voice_id`` (Amazon Polly voice names) -> an espeak-ng voice, so a suite that picks a voice gets a
different speaker here too. Unknown names fall back to the default; an espeak-ng voice name passes through."""

from __future__ import annotations

DEFAULT_VOICE = "en-us"

_POLLY_TO_ESPEAK = {
    # US English
    "joey": "en-us+m3", "justin": "en-us+m1", "matthew": "en-us+m7", "kevin": "en-us+m2",
    "joanna": "en-us+f3", "kendra": "en-us+f2", "kimberly": "en-us+f4", "salli": "en-us+f1", "ivy": "en-us+f5",
    "ruth": "en-us+f2", "danielle": "en-us+f4", "gregory": "en-us+m4", "stephen": "en-us+m5",
    # British, Australian, Indian, Welsh English
    "amy": "en-gb+f3", "emma": "en-gb+f2", "brian": "en-gb+m3", "arthur": "en-gb+m1",
    "nicole": "en-gb-x-rp+f2", "olivia": "en-gb-x-rp+f3", "russell": "en-gb-x-rp+m3",
    "aditi": "en-gb-x-rp+f4", "raveena": "en-gb-x-rp+f1", "geraint": "en-gb-x-gbcwmd+m3",
}


def espeak_voice(voice_id: str | None) -> str:
    if not voice_id:
        return DEFAULT_VOICE
    key = voice_id.strip().lower()
    if key in _POLLY_TO_ESPEAK:
        return _POLLY_TO_ESPEAK[key]
    # An espeak-ng voice given directly ("en-us+f3", "en-gb"): only letters, digits and - + _ reach the command.
    if key and all(c.isalnum() or c in "-+_" for c in key) and key[0].isalpha() and len(key) <= 40:
        return key if key.startswith("en") else DEFAULT_VOICE
    return DEFAULT_VOICE
