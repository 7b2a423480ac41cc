"""Segmentation on real human speech that went through the phone codec (G.711 mu-law at 8 kHz)."""

from __future__ import annotations

from pathlib import Path

import pytest

from avsd.audio.wav_source import load_wav
from avsd.phone.call import Call, Utterance
from avsd.phone.convert import resample, ulaw_decode, ulaw_encode
from avsd.phone.core import SegmenterSettings

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real" / "porcupine-multiple-keywords-en.wav"


class NullLine:
    """A line that plays nothing: only the caller side is under test."""

    rate = 8000

    def encode(self, pcm_frames: list[bytes]) -> list[str | bytes]:
        return list(pcm_frames)

    async def send(self, messages: list[str | bytes]) -> None:
        return None

    async def send_mark(self, name: str) -> bool:
        return False

    async def clear(self) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.mark.skipif(not REAL.exists(), reason=f"real recording missing: {REAL}")
async def test_real_keywords_over_mulaw_are_cut_into_utterances() -> None:
    # One speaker says ~20 keywords with pauses between them (45.5 s, Picovoice's multiple_keywords.wav).
    pcm = load_wav(REAL)
    line = ulaw_decode(ulaw_encode(resample(pcm, 16000, 8000)))  # what a Twilio caller's audio has been through
    got: list[Utterance] = []
    call = Call(caller="+15550100", call_id="real", transport=NullLine(), session=None,
                segmenter=SegmenterSettings(), utterance_hooks=[got.append], dtmf_hooks=[])
    for offset in range(0, len(line), 320):  # 20 ms, as Twilio sends it
        call.feed(line[offset : offset + 320])
    seconds = [len(u.pcm) / 32000 for u in got]
    assert 15 <= len(got) <= 30, seconds  # about one utterance per keyword, not one per syllable nor one in all
    assert all(0.6 <= s <= 10.0 for s in seconds), seconds  # each holds a word, pre-roll + 400 ms of silence
    assert sum(seconds) < 0.8 * len(pcm) / 32000  # the pauses between keywords are not sent anywhere
    await call.close()
