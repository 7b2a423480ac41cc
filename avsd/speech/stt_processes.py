"""Speech to text in worker processes, each holding its own loaded decoder: free text (the virtual device's
replies) or a grammar (the offline assistant serving many callers, ``assistant.decoder_processes``).

pocketsphinx's binding holds the GIL while it decodes (measured: two threads 1.41 s against 1.08 s one after
the other), so threads in one process transcribe one utterance at a time. Processes decode in parallel.

Each worker is a ``ProcessPoolExecutor`` of one process (``spawn``: a fresh interpreter, never a fork of a
running event loop with threads), loaded once by its initializer (~1 s; ~170 MB RSS with the full language
model), and ended by the kernel if the server process is killed (avsd/orphans.py; with ``forkserver`` the
workers were the fork server's children and outlived a killed server).
One executor per worker, rather than one executor of N, so a worker that dies fails only the utterance it
was decoding: a shared executor marks every pending future broken. That utterance gets ``SttWorkerError``;
the worker is replaced; the others go on. Decoding itself is stt.py's (``PocketsphinxModel.transcribe``).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import subprocess
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from avsd.errors import AvsdError
from avsd.orphans import end_with_parent
from avsd.speech.convert import resample
from avsd.speech.stt import PocketsphinxModel, Recognition, Transcript
from avsd.speech.tts import TtsUnavailableError, espeak_pcm

_log = logging.getLogger(__name__)

# Free-text decoder options: pocketsphinx's defaults, ~0.19 s of CPU per second of reply. Every cheaper setting
# measured made the transcripts worse (bench/bench_stt_free_text.py, word error rate with phrases / without,
# CPU per audio second): defaults 20.8 % / 30.2 %, 0.195; wbeam 1e-20 20.8 / 31.1, 0.174; maxhmmpf 3000
# 23.6 / 32.1, 0.147; fwdflat off 24.5 / 30.2, 0.162; topn 2 31.1 / 39.6, 0.179; beams 1e-40 38.7 / 42.5, 0.115.
FREE_TEXT_OPTIONS: Mapping[str, Any] = {}

# Free text keeps a live cepstral mean that carries over from one utterance to the next (stt.py), and a new
# decoder starts from the model's generic one: the first replies a fresh worker hears come out much worse.
# Each worker therefore hears ~10 s of speech (espeak-ng, none of the bench's sentences) once at load. Measured
# on bench_vdevice's eight replies, a fresh decoder per reply, three decodes each: word error rate 39.0 % ->
# 19.5 % with the reply as phrases, 44.7 % -> 27.7 % without.
_WARM_UP_TEXT = (
    "Here is what I found. Today will be sunny, with a high of seventy two degrees. "
    "Your next meeting starts at three o'clock. I added milk and bread to your shopping list."
)

WORKER_NICE = 10  # added to the server's nice value in each worker process

_model: PocketsphinxModel | None = None  # in a worker process: its one decoder configuration


class SttWorkerError(AvsdError):
    """A speech-to-text worker process ended while decoding this utterance (it has been replaced)."""

    code = "stt-worker"


def warmed_up_model(options: Mapping[str, Any]) -> PocketsphinxModel:
    """A free-text model whose decoder has heard the warm-up speech (what each worker holds)."""
    model = PocketsphinxModel(free_text_options=options)
    try:
        warm_up = resample(espeak_pcm(_WARM_UP_TEXT), 16000).data
    except (TtsUnavailableError, OSError, subprocess.SubprocessError) as exc:  # a cold start still decodes
        _log.warning("speech-to-text warm-up skipped: %s", exc)
        return model
    model.transcribe(warm_up)
    return model


def _load(options: Mapping[str, Any], grammar_model: Mapping[str, Any] | None) -> None:
    global _model
    end_with_parent()
    # Decoding is batch work beside real-time work in the server process (the phone bridge paces every caller's
    # reply in 20 ms frames): when all cores decode, the pacer must still wake on time. bench_phone, 20 callers
    # on 2 cores: pacing p95 3.86 ms with the workers at the server's priority, WORKER_NICE below.
    os.nice(WORKER_NICE)
    # A grammar decoder needs no warm-up: it decodes each utterance whole, with that utterance's own mean (stt.py).
    _model = PocketsphinxModel(**grammar_model) if grammar_model is not None else warmed_up_model(options)


def _pid() -> int:
    return os.getpid()


def _transcribe(pcm: bytes, grammar: str | None) -> Transcript:
    assert _model is not None, "the initializer loads the model"
    return _model.transcribe(pcm, grammar)


class SttProcessPool:
    """``workers`` processes transcribing 16 kHz mono 16-bit PCM, in free text or, given ``grammar_model``
    (:class:`PocketsphinxModel`'s arguments: ``jsgf``, ``words``, ``pronunciations``), with those grammars.
    Started on first use (or by :meth:`start`); :meth:`close` ends them. Also a recogniser for the assistant
    (:meth:`recognition`), like :class:`PocketsphinxModel`."""

    def __init__(
        self,
        workers: int,
        options: Mapping[str, Any] | None = None,
        *,
        grammar_model: Mapping[str, Any] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("an STT pool needs at least one worker")
        self.workers = workers
        self._options = dict(FREE_TEXT_OPTIONS if options is None else options)
        self._grammar_model = dict(grammar_model) if grammar_model is not None else None
        self._context = multiprocessing.get_context("spawn")
        self._idle: asyncio.Queue[ProcessPoolExecutor] = asyncio.Queue()
        self._all: list[ProcessPoolExecutor] = []
        self._pids: dict[ProcessPoolExecutor, Future[int]] = {}  # answered once the worker has loaded
        self._started: asyncio.Task[None] | None = None

    async def worker_pids(self) -> list[int]:
        """The worker processes' ids, once loaded (tests kill one)."""
        return list(await asyncio.gather(*(asyncio.wrap_future(self._pids[e]) for e in self._all)))

    async def start(self) -> None:
        """Start and load every worker (idempotent): a missing model fails here, not on some later request."""
        if self._started is None:
            self._started = asyncio.create_task(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        executors = [self._new_executor() for _ in range(self.workers)]
        await self.worker_pids()
        for executor in executors:
            self._idle.put_nowait(executor)

    async def transcribe(self, pcm: bytes, grammar: str | None = None) -> Transcript:
        await self.start()
        executor = await self._idle.get()
        try:
            try:
                future = executor.submit(_transcribe, pcm, grammar)
            except BrokenProcessPool:  # it died while idle: not this utterance's doing, so try a new one
                executor = self._replace(executor)
                future = executor.submit(_transcribe, pcm, grammar)
            try:
                return await asyncio.wrap_future(future)
            except BrokenProcessPool as exc:
                _log.warning("a speech-to-text worker ended while decoding; starting a new one")
                executor = self._replace(executor)
                raise SttWorkerError("the speech-to-text worker stopped while decoding this reply") from exc
        finally:
            self._idle.put_nowait(executor)

    def recognition(self, grammar: str | None = None) -> Recognition:
        """A new utterance, decoded by the next free worker when it ends (the assistant's recogniser)."""
        return Recognition(self, grammar)

    def decode_later(self, pcm: bytes, grammar: str | None) -> asyncio.Future[Transcript]:
        return asyncio.ensure_future(self._heard(pcm, grammar))

    async def _heard(self, pcm: bytes, grammar: str | None) -> Transcript:
        try:
            return await self.transcribe(pcm, grammar)
        except SttWorkerError as exc:  # the assistant then answers "I didn't hear", as for a Wyoming failure
            _log.warning("%s", exc)
            return Transcript("")

    def close(self) -> None:
        for executor in self._all:
            executor.shutdown(wait=False, cancel_futures=True)
        self._all.clear()
        self._pids.clear()

    def _new_executor(self) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            max_workers=1, mp_context=self._context, initializer=_load, initargs=(self._options, self._grammar_model)
        )
        self._all.append(executor)
        self._pids[executor] = executor.submit(_pid)  # also starts the process and its initializer now
        return executor

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """No await in here: the caller hands the new executor back to the idle queue whatever happens next."""
        broken.shutdown(wait=False, cancel_futures=True)
        if broken in self._all:
            self._all.remove(broken)
        self._pids.pop(broken, None)
        return self._new_executor()
