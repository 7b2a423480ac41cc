"""Free-text speech to text (the virtual device's reply transcripts): decoder CPU against word error rate for
pocketsphinx settings, so a cheaper setting is taken only if the transcripts do not get worse.

Per setting: a warmed-up model (what each STT worker holds, avsd/speech/stt_processes.py) decodes
bench_vdevice's eight replies (espeak-ng -> MP3 -> 16 kHz, as the local server sends them) twice, in order;
``wer_phrases`` with each reply's own text as the phrase hint, ``wer_no_phrases`` without; ``cpu_per_audio_s``
is decoder CPU seconds per second of reply. One process, one thread: CPU time, not wall time, so other load
on the machine changes it little.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_vdevice import REPLIES, word_errors

from avsd.speech.convert import decode_mp3
from avsd.speech.stt_processes import FREE_TEXT_OPTIONS, warmed_up_model
from avsd.speech.tts import synthesize_mp3
from avsd.vdevice.hints import apply_phrase_hints

# pocketsphinx 5 defaults: beam 1e-48, wbeam 7e-29, pbeam 1e-48, maxhmmpf 30000, topn 4, ds 1, fwdflat and
# bestpath on, lw 6.5.
SETTINGS: Mapping[str, Mapping[str, Any]] = {
    "current": FREE_TEXT_OPTIONS,
    "no_fwdflat": {"fwdflat": False},
    "maxhmmpf_3000": {"maxhmmpf": 3000},
    "narrow_beams": {"beam": 1e-40, "wbeam": 1e-24, "pbeam": 1e-40},
    "wbeam_1e-20": {"wbeam": 1e-20},
    "topn_2": {"topn": 2},
    "ds_2": {"ds": 2},
}


def measure(options: Mapping[str, Any], replies: list[tuple[str, bytes]]) -> dict[str, float]:
    model = warmed_up_model(options)
    errors_hinted = errors_plain = words = 0
    cpu_s = audio_s = 0.0
    for _ in range(2):
        for text, pcm in replies:
            transcript = model.transcribe(pcm)
            cpu_s += transcript.decode_s
            audio_s += len(pcm) / 32000
            wrong, count = word_errors(text, transcript.text)
            errors_plain += wrong
            words += count
            errors_hinted += word_errors(text, apply_phrase_hints(transcript.text, [text.rstrip(".?!")]))[0]
    return {"wer_phrases": round(errors_hinted / words, 3), "wer_no_phrases": round(errors_plain / words, 3),
            "cpu_per_audio_s": round(cpu_s / audio_s, 3)}


def run() -> list[dict[str, object]]:
    replies = [(text, decode_mp3(synthesize_mp3(text), 16000).data) for text in REPLIES]
    rows: list[dict[str, object]] = []
    for name, options in SETTINGS.items():
        found = measure(options, replies)
        rows.append({"metric": f"stt_free_text_{name}_wer_phrases", "value": found["wer_phrases"], "unit": "ratio",
                     "wer_no_phrases": found["wer_no_phrases"], "cpu_per_audio_s": found["cpu_per_audio_s"],
                     "options": {k: str(v) for k, v in options.items()}})
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
