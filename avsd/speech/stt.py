"""Speech to text with pocketsphinx (the PyPI wheel ships the en-US acoustic model, dictionary and LM).

Two modes:

- **grammar** (the assistant): a JSGF grammar generated from the intents, and a dictionary cut down to the
  grammar's words. The full language model is never loaded, which keeps the daemon small (~25 MB less RSS) and
  makes decoding about 10x cheaper than free text.
- **free text** (later front-ends): the wheel's full LM; ``hints`` (phrases the caller expects) snap a
  hypothesis that is close to one of them onto it.

Decoding happens once, at the end of speech, over the whole utterance (``full_utt``): pocketsphinx then
normalises the cepstral mean over the utterance itself (batch CMN) instead of the live estimate that starts
from a fixed vector and adapts over the first second or two. Utterances to an assistant are short, so the live
estimate was still wrong for most of them: measured on the bench's 320 espeak-ng utterances, whole-utterance
decoding took intent+slots from 64.1 % to 70.0 % (pitch-shifted voices 54 % -> 68 %), and a short answer with
no leading silence ("ten minutes" after "For how long?") is heard right. Free-text mode keeps the live mean.
The cost is latency: the decoder starts when the speech ends (one worker thread per model; pocketsphinx is not
thread-safe per decoder, and the loop never waits for it); the bench measures end of speech -> Speak.

Grammar-mode decoder settings, each measured on bench_assistant's 320 noisy espeak-ng utterances, chosen on its
tuning half and checked on its held-out half (``split_of``) and on a real person's non-command words: kept are
whole-utterance CMN (above), wide beams, ``topn`` 16, the SecondPass with its warp (see the constants) and a noise
floor relative to the speech (the quirks below). The warp and the relative floor were chosen on the whole corpus,
not its tuning half, and checked on real people (pocketsphinx-testdata in the corpus's conditions) and a quiet
room. Tried and dropped: ``lw`` 10 (no change); ``fsgusefiller`` off (14 % right: no silence or filler between
words any more); a fixed VTLN warp 0.9 in the front end (pitch-shifted voices 62 -> 77 %, clean speech 82 -> 81 %, a
change for one kind of voice), and a per-utterance one from {0.9, 1, 1.1} on every utterance (+3 points only when
chosen by the best of three full decodes, three times the CPU; +1.5 when chosen by a phone loop's score, twice the
CPU): the SecondPass's warp costs only what the first pass rejected; front-end settings (``upperf``, ``nfilt``,
``lowerf``, ``remove_noise``) passed to the Decoder change nothing, because the model's ``feat.params`` overrides
them, and with ``feat.params`` edited to a telephone band (``upperf`` 3500, as an 8 kHz model has) the 16 kHz model
heard 1 % of the telephone-band utterances right; low-passing telephone-band audio at 3.4 kHz before decoding (72
-> 69 %); Wiener-filter denoising before decoding (68 -> 61 %: its distortion costs more than the noise);
hesitations in the first pass's grammar (no accuracy change, CPU +30 %, fewer non-commands rejected; the second
pass allows them); rejecting by confidence instead of a "something else" loop (the command's acoustic score against
a free phone loop's: per frame of the upload +6 points at equal rejection, but that moves with the silence around
the speech; per frame of speech +2 points, and it still rejected a clean espeak-ng "set a timer" padded with 0.5 s
of silence).

Quirk: pocketsphinx's feature front end misbehaves on *digital* silence (exact zeros, as in synthetic speech or
padded WAVs): words next to it get lost ("cancel the timer" -> "cancel the"). Real microphones never produce it;
a fixed, very low noise floor (about -60 dBFS) is added to every chunk so both behave alike.

Quirk: with the grammar, it also misbehaves on a background far quieter than the speech. The model was trained on
real recordings, whose background is some 20-40 dB below the voice (pocketsphinx-testdata's: ~30 dB); espeak-ng
over the -60 dBFS floor is ~60 dB above it, as a good microphone in a quiet room can be, and words appear in the
pauses ("never mind" -> "them where my use", "stop" -> "tell his"). So the floor is raised to 30 dB below the
speech's loud frames (``_FLOOR_BELOW_SPEECH_DB``). Measured on bench_assistant's quiet room (80 utterances, no
noise added) and its noisy corpus, decoded two at a time: as voiced 82.5 -> 90 %, a lower voice 70 -> 92.5 %, the
noisy corpus 79.7 -> 80.6 % (35 dB: 87.5 / 90 / 79.1 %; 25 dB: 90 / 90 / 79.7 %; 40 dB: 85 / 82.5 / 79.1 %).
Free text keeps the fixed floor: with the live cepstral mean it made transcripts worse (bench_stt_free_text's
eight replies: word error rate 20.8 -> 24.5 % with phrase hints, 30.2 -> 49.1 % without).
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from avsd.audio.resample import resample_buffer
from avsd.errors import AvsdError
from avsd.memory import give_back_free_memory

_log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
MAX_UTTERANCE_S = 30.0
_MAX_UTTERANCE_BYTES = int(MAX_UTTERANCE_S * SAMPLE_RATE) * 2
_NOISE_FLOOR = 30.0  # std of the added noise, in 16-bit sample units (~ -60 dBFS)
_FLOOR_BELOW_SPEECH_DB = 30.0  # grammar mode: the added noise at least this far below the loud frames' level
_HINT_CUTOFF = 0.75
_LIVE_CHUNK_BYTES = 3200  # 100 ms
_GATE_FRAME = 320  # 20 ms
_GATE_MIN_RMS = 100.0  # -50 dBFS
_GATE_MIN_RATIO = 2.0  # 6 dB between the loud and the quiet frames
# Wider than pocketsphinx's defaults (1e-48 / 7e-29 / 1e-48). A grammar search is small, and with the default
# beams the right path was often pruned before the end: measured on bench_assistant's 320 utterances, empty
# results 16 -> 6, accuracy 72.5 % -> 74.7 %, decoder CPU ~130 -> ~165 ms per utterance (loaded 2-core VM).
# topn: Gaussians scored per codebook and frame (the model's default is 4). More of them score voices and noise
# the model knows less well more exactly. Measured on bench_assistant's 320 utterances (tuning / held-out half,
# decoder CPU median): 4: 72.4 / 68.1 %, 193 ms; 8: 72.4 / 72.6 %, 215 ms; 16: 74.1 / 75.6 %, 257 ms;
# 32: 75.1 / 76.3 %, 318 ms. 16 takes most of the gain for a third more CPU (~+30 ms for a short command).
_GRAMMAR_SEARCH = {"beam": 1e-60, "wbeam": 1e-40, "pbeam": 1e-60, "topn": 16}
# SecondPass: a command the first pass heard as "something else" is taken if its confidence (see confidence())
# is at least this. espeak-ng fits the model worse than people do: its commands score -8 to -20, a person's
# ("go forward ten meters", goforward.raw) +1.3, a person's single words that are not commands -14.7 to -25.
# On bench_assistant's tuning half alone -22..-19 looked best; that rescued 11 of a person's 23 non-command
# words. -14 rescues none of them and keeps the synthetic non-commands' rejection (tuning: 21 vs 22 of 33).
RESCUE_ABOVE = -14.0
# The SecondPass also hears the audio played faster by these factors (formants and pitch raised, as a vocal-tract
# length warp) and keeps whichever fits best: a low voice's formants lie below most of what the acoustic model
# was trained on. Measured before the relative noise floor (module doc), strict grammar on bench_assistant's 320
# espeak-ng utterances (a sox pitch of -200 cents is its low voice): 1.0 alone 81.9 % right, best-fitting of
# {1.0, 1.12} 86.3 % (pitch-shifted 76.5 -> 92.6 %, the rest 83.7 -> 84.1 %); the whole recogniser 76.6 -> 79.7 %
# (its 40 held-out non-commands: 62.5 % rejected before and after; a person's 23 words: one more taken); on real
# people (pocketsphinx-testdata, 91 decodes in the same conditions) 91.2 -> 95.6 % (pitch-shifted 76 -> 95 %,
# the rest unchanged at 95.7 %). Lower factors (0.94, 0.89) made every condition worse, and with them in the
# choice fewer were right (81.6 %). Only what the first pass rejected is decoded again, so a command heard at
# once costs nothing more; a rescue costs twice as much.
RESCUE_WARPS = (1.12,)
_PHONE_LOOP = "_phones"
_STRICT = "/strict"


class SttUnavailableError(AvsdError):
    """pocketsphinx (or its model) is missing: the message says what to install."""

    code = "stt-unavailable"


class VocabularyError(ValueError):
    """A grammar word has no pronunciation."""


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    # Decoder time spent on this utterance, seconds (CPU of the worker thread, for the bench).
    decode_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SecondPass:
    """What the first grammar heard as "something else" (its weighted word loop, which also swallows some
    commands) is decoded again with ``grammars`` (the same commands without that loop, keyed by the first
    grammar's name) and taken only if it explains the audio nearly as well as a free phone loop does."""

    grammars: Mapping[str, str]
    needed: Callable[[str], bool]  # whether the first pass's text is "something else"
    accept_above: float = RESCUE_ABOVE
    warps: tuple[float, ...] = RESCUE_WARPS  # also tried, played this much faster (RESCUE_WARPS)


def _pocketsphinx() -> Any:
    try:
        import pocketsphinx
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SttUnavailableError("pocketsphinx is not installed (pip install 'pocketsphinx>=5.0')") from exc
    return pocketsphinx


def model_paths() -> tuple[Path, Path]:
    """(acoustic model dir, full dictionary) of the wheel's en-US model."""
    ps = _pocketsphinx()
    base = Path(ps.get_model_path()) / "en-us"
    return base / "en-us", base / "cmudict-en-us.dict"


def known_words(words: Iterable[str], extra: Mapping[str, str] | None = None) -> set[str]:
    """Which of ``words`` the dictionary (or ``extra``) can pronounce."""
    wanted = {w.lower() for w in words}
    found = wanted & {k.lower() for k in (extra or {})}
    _, dict_path = model_paths()
    with dict_path.open(encoding="utf-8") as f:
        for line in f:
            word = line.split(" ", 1)[0].split("(", 1)[0]
            if word in wanted:
                found.add(word)
    return found


def cut_dictionary(words: Iterable[str], extra: Mapping[str, str] | None = None) -> str:
    """The dictionary lines for ``words`` (all pronunciation variants), plus ``extra`` ``{word: "PH ONES"}``.
    Raises VocabularyError naming words that have no pronunciation."""
    wanted = {w.lower() for w in words}
    extra = {k.lower(): v for k, v in (extra or {}).items()}
    lines: list[str] = []
    found: set[str] = set()
    _, dict_path = model_paths()
    with dict_path.open(encoding="utf-8") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            word = head.split("(", 1)[0]
            if word in wanted and word not in extra:
                lines.append(line.rstrip("\n"))
                found.add(word)
    for word, phones in extra.items():
        if word in wanted:
            lines.append(f"{word} {phones}")
            found.add(word)
    missing = sorted(wanted - found)
    if missing:
        raise VocabularyError(f"no pronunciation for: {', '.join(missing)} (add them to [pronunciations])")
    return "\n".join(lines) + "\n"


class PocketsphinxModel:
    """A loaded decoder configuration. Decoders are pooled: one per concurrent utterance."""

    def __init__(
        self,
        *,
        jsgf: str | Mapping[str, str] | None = None,
        words: Iterable[str] = (),
        pronunciations: Mapping[str, str] | None = None,
        hints: Sequence[str] = (),
        second_pass: SecondPass | None = None,
        free_text_options: Mapping[str, Any] | None = None,
    ) -> None:
        ps = _pocketsphinx()
        # Decoder options for free text only (beams and the like, see FREE_TEXT_OPTIONS in stt_processes.py).
        self._free_text_options = dict(free_text_options or {})
        self._ps = ps
        # Named grammars (one pocketsphinx search each); the first is the default.
        self.grammars: dict[str, str] = {"grammar": jsgf} if isinstance(jsgf, str) else dict(jsgf or {})
        self.hints = [h.lower() for h in hints]
        self.second_pass = second_pass if self.grammars else None
        self._dict_file: str | None = None
        if self.grammars:
            fd, self._dict_file = tempfile.mkstemp(prefix="avsd-grammar-", suffix=".dict")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(cut_dictionary(words, pronunciations))
        self._pool: list[Any] = []
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avsd-stt")
        self._pool.append(self._new_decoder())  # load now: fail at start-up, not on the first question

    def _new_decoder(self) -> Any:
        hmm, _ = model_paths()
        if self.grammars:
            # bestpath off: on a grammar with a word loop the lattice search in hyp() takes minutes.
            decoder = self._ps.Decoder(
                hmm=str(hmm), dict=self._dict_file, lm=None, bestpath=False, loglevel="FATAL", **_GRAMMAR_SEARCH
            )
            for name, grammar in self.grammars.items():
                decoder.add_jsgf_string(name, grammar)
            if self.second_pass is not None:
                for name, grammar in self.second_pass.grammars.items():
                    decoder.add_jsgf_string(name + _STRICT, grammar)
                decoder.add_allphone_file(_PHONE_LOOP)  # no phone LM: any phone may follow any other
            decoder.activate_search(next(iter(self.grammars)))
        else:
            decoder = self._ps.Decoder(hmm=str(hmm), loglevel="FATAL", **self._free_text_options)
        return decoder

    def acquire(self) -> Any:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        return self._new_decoder()

    def select(self, decoder: Any, grammar: str | None) -> None:
        if self.grammars:
            name = grammar if grammar in self.grammars else next(iter(self.grammars))
            if decoder.current_search() != name:
                decoder.activate_search(name)

    def release(self, decoder: Any) -> None:
        with self._lock:
            self._pool.append(decoder)

    def recognition(self, grammar: str | None = None) -> Recognition:
        """A new utterance; ``grammar`` picks one of the named grammars (default: the first)."""
        return Recognition(self, grammar)

    def decode_later(self, pcm: bytes, grammar: str | None) -> asyncio.Future[Transcript]:
        """:meth:`transcribe` in this model's worker thread, then :meth:`free_search_memory` (after the
        transcript is delivered: not on the answer's path)."""
        future = asyncio.get_running_loop().run_in_executor(self.executor, self.transcribe, pcm, grammar)
        self.executor.submit(self.free_search_memory)
        return future

    def free_search_memory(self) -> None:
        """Give the pages that decoding freed back to the system. Each search's word history is dropped as soon
        as its result is read (_forget); without that, with the grammar's wide beams, every search used kept
        several MiB per second of its last utterance (measured +254 MiB after one 9 s non-command)."""
        give_back_free_memory()

    def snap_to_hint(self, text: str) -> str:
        if not self.hints or not text:
            return text
        close = difflib.get_close_matches(text, self.hints, n=1, cutoff=_HINT_CUTOFF)
        return close[0] if close else text

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self._dict_file is not None:
            Path(self._dict_file).unlink(missing_ok=True)
            self._dict_file = None

    def transcribe(self, pcm: bytes, grammar: str | None = None) -> Transcript:
        """Blocking: a whole utterance at once (tests, the bench's reference path)."""
        decoder = self.acquire()
        try:
            self.select(decoder, grammar)
            return _decode_all(decoder, pcm, self)
        finally:
            self.release(decoder)


def _frame_rms(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """RMS of each whole 20 ms frame."""
    frames = len(samples) // _GATE_FRAME
    squares = samples[: frames * _GATE_FRAME].reshape(frames, _GATE_FRAME) ** 2
    return np.sqrt(np.mean(squares, axis=1, dtype=np.float32))


def _dither(chunk: bytes, rng: np.random.Generator, *, below_speech_db: float | None = None) -> bytes:
    """``chunk`` plus white noise at the fixed floor, or (``below_speech_db``) at that many dB below the level of
    its loudest 20 ms frames (95th percentile) if that is higher: see the module doc's quirks."""
    samples = np.frombuffer(chunk[: len(chunk) // 2 * 2], dtype="<i2").astype(np.float32)
    std = _NOISE_FLOOR
    rms = _frame_rms(samples)
    if below_speech_db is not None and len(rms):
        std = max(std, float(np.percentile(rms, 95)) / 10 ** (below_speech_db / 20))
    samples += rng.normal(0.0, std, len(samples)).astype(np.float32)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def has_speech(pcm: bytes) -> bool:
    """Whether the audio has anything a person could have said: louder than -50 dBFS somewhere, and not one
    stationary level (speech rises at least 6 dB above its own pauses; hum, fans and hiss do not). With the
    cepstral mean taken over the utterance, a decoder hears words in plain noise (1 s of silence -> "two")."""
    rms = _frame_rms(np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32))
    if len(rms) < 5:
        return False
    loud, quiet = float(np.percentile(rms, 95)), float(np.percentile(rms, 20))
    return bool(loud >= _GATE_MIN_RMS and loud >= _GATE_MIN_RATIO * max(quiet, 1.0))


def confidence(words_score: int, phones_score: int, frames: int) -> float:
    """How much worse the grammar's best word sequence explains the audio than the best unconstrained phone
    sequence, per 10 ms frame of the upload (0: as well; more negative: worse). A command fits both about
    equally; other speech, forced onto the nearest command, fits it much worse. Per frame of the whole upload
    (silence included: it fits both alike), so more silence around the same speech raises it: the bench's
    uploads carry 0.9 s, about what the server's endpointer leaves; with none, fewer commands are rescued."""
    return (words_score - phones_score) / max(frames, 1)


def _acoustic_score(decoder: Any) -> int:
    """The last utterance's acoustic score (in the decoder's log base), summed over its segments: grammar and
    insertion weights left out, so a word search and a phone loop compare."""
    logmath = decoder.logmath
    return sum(logmath.log(max(seg.ascore, 1e-300)) for seg in decoder.seg() or ())


def _forget(decoder: Any) -> None:
    """Drop the current search's word history of its last utterance: pocketsphinx keeps it (for hyp() and seg())
    until that search's next utterance, which may never come. An utterance of no audio frees it."""
    decoder.start_utt()
    decoder.end_utt()


def _run(decoder: Any, pcm: bytes, *, full_utt: bool) -> str:
    decoder.start_utt()
    if full_utt:
        # full_utt: the whole utterance at once, so the cepstral mean is the utterance's own (module doc).
        decoder.process_raw(pcm, False, True)
    else:
        for offset in range(0, len(pcm), _LIVE_CHUNK_BYTES):
            decoder.process_raw(pcm[offset : offset + _LIVE_CHUNK_BYTES], False, False)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


def _warped(pcm: bytes, factor: float) -> bytes:
    """The audio played ``factor`` times faster: every frequency (formants, pitch) times ``factor``."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    out = resample_buffer(samples, round(SAMPLE_RATE * factor), SAMPLE_RATE)
    return np.clip(out.round(), -32768, 32767).astype("<i2").tobytes()


def _rescue(decoder: Any, pcm: bytes, second: SecondPass) -> str:
    """The strict grammar's command if it fits well enough (SecondPass), else "". Heard as recorded and warped
    (SecondPass.warps); the best fit counts."""
    search = decoder.current_search()
    if search not in second.grammars:
        return ""
    best_text, best_conf = "", float("-inf")
    try:
        for factor in (1.0, *second.warps):
            audio = pcm if factor == 1.0 else _warped(pcm, factor)
            decoder.activate_search(search + _STRICT)
            text = _run(decoder, audio, full_utt=True)
            if not text:
                _forget(decoder)
                continue
            words_score, frames = _acoustic_score(decoder), decoder.n_frames()
            _forget(decoder)
            decoder.activate_search(_PHONE_LOOP)
            _run(decoder, audio, full_utt=True)
            conf = confidence(words_score, _acoustic_score(decoder), frames)
            _forget(decoder)
            _log.debug("stt: second pass x%.2f %r, confidence %.1f", factor, text, conf)
            if conf > best_conf:
                best_text, best_conf = text, conf
    finally:
        decoder.activate_search(search)
    return best_text if best_conf >= second.accept_above else ""


def _decode_all(decoder: Any, pcm: bytes, model: PocketsphinxModel) -> Transcript:
    start = time.thread_time()
    if not has_speech(pcm):
        return Transcript("", time.thread_time() - start)
    if not model.grammars:
        # Free text keeps the live mean: the virtual device suite's transcript of an espeak-ng reply got
        # worse with the utterance's own ("it is 3:26 PM" -> "the three twenty six pm").
        text = model.snap_to_hint(_run(decoder, _dither(pcm, np.random.default_rng(0)), full_utt=False))
        return Transcript(text, time.thread_time() - start)
    dithered = _dither(pcm, np.random.default_rng(0), below_speech_db=_FLOOR_BELOW_SPEECH_DB)
    text = _run(decoder, dithered, full_utt=True)
    _forget(decoder)
    second = model.second_pass
    if text and second is not None and second.needed(text):
        text = _rescue(decoder, dithered, second) or text
    return Transcript(text, time.thread_time() - start)


class Decoder(Protocol):
    def decode_later(self, pcm: bytes, grammar: str | None) -> asyncio.Future[Transcript]:
        """Decode a whole utterance off the event loop (a thread, or a worker process)."""
        ...


class Recognition:
    """One utterance: audio is buffered while it streams in and decoded at :meth:`finish`. Not reusable."""

    def __init__(self, model: Decoder, grammar: str | None = None) -> None:
        self._model = model
        self._grammar = grammar
        self._pcm = bytearray()
        self._result: asyncio.Future[Transcript] | None = None

    def feed(self, pcm: bytes) -> None:
        """Queue audio (16 kHz, 16-bit mono). Call from the loop. Beyond ``MAX_UTTERANCE_S`` audio is dropped
        (a stuck upload must not grow the daemon without bound)."""
        if self._result is not None:
            return
        room = _MAX_UTTERANCE_BYTES - len(self._pcm)
        if room > 0:
            self._pcm += pcm[:room]

    def finish(self) -> asyncio.Future[Transcript]:
        """The transcript (idempotent: the first call ends the utterance; later calls get the same future)."""
        if self._result is None:
            pcm, self._pcm = bytes(self._pcm), bytearray()
            self._result = self._model.decode_later(pcm, self._grammar)
        return self._result
