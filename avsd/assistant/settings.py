"""``[assistant]`` config section (a light module: the config loader imports it without pocketsphinx)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AssistantSettings:
    """``[assistant]``: the offline assistant (``avs.backend = "assistant"``)."""

    locale: str = field(default="en-US", metadata={"help": "language of the grammar and answers (a locales/ file)"})
    voice: str = field(default="en-us", metadata={"help": "espeak-ng voice of the answers, e.g. en-us+f3"})
    rate_wpm: int = field(default=165, metadata={"help": "speaking rate, words per minute", "min": 80, "max": 450})
    clock_24h: bool = field(default=False, metadata={"help": "say times as 18:30 instead of 6:30 PM"})
    music_dir: str = field(default="", metadata={"help": "folder of music files to play (empty = no music)"})
    stt_url: str = field(
        default="", metadata={"help": "Wyoming ASR server, e.g. tcp://127.0.0.1:10300 (empty = pocketsphinx)"}
    )
    tts_url: str = field(
        default="", metadata={"help": "Wyoming TTS server, e.g. tcp://127.0.0.1:10200 (empty = espeak-ng)"}
    )
    rasa_url: str = field(
        default="", metadata={"help": "a Rasa bot's base URL: answer with its REST channel instead of the skills"}
    )
    reject_unknown: bool = field(
        default=True, metadata={"help": "hear speech outside the commands as 'something else' (fallback)"}
    )
    answer_timeout_s: float = field(
        default=5.0, metadata={"help": "longest wait for recognition before the fallback", "min": 0.1}
    )
    decoder_processes: int = field(
        default=0,
        metadata={
            "help": "recognise in this many worker processes, side by side (0 = one thread of this process; "
            "for a phone line or a test farm with many questions at once: the number of cores)",
            "min": 0,
            "max": 64,
        },
    )
