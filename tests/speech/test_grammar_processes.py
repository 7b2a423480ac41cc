"""The assistant's grammar decoded in worker processes (``assistant.decoder_processes``): real pocketsphinx in
real spawned processes, questions decoded side by side, a worker killed mid-decode."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import numpy as np
import pytest

from avsd.assistant.brain import AssistantBrain, grammar_recognizer
from avsd.assistant.grammar import Language
from avsd.assistant.settings import AssistantSettings
from avsd.speech.stt import PocketsphinxModel
from avsd.speech.stt_processes import SttProcessPool
from tests.processes import process_gone

pytestmark = pytest.mark.timeout(120)


def test_processes_zero_is_the_in_process_thread() -> None:
    model = grammar_recognizer(Language.load())
    assert isinstance(model, PocketsphinxModel)
    model.close()


async def test_two_questions_decoded_side_by_side_as_in_the_thread(say: Callable[..., bytes]) -> None:
    brain = AssistantBrain(AssistantSettings(decoder_processes=2))
    pool = brain.recognizer
    assert isinstance(pool, SttProcessPool)
    await brain.start()
    try:
        questions = {
            "what time is it": say("what time is it"),
            "set the volume to four": say("set the volume to four", "en-us+m3"),
        }
        recognitions = []
        for pcm in questions.values():
            recognition = pool.recognition()
            for offset in range(0, len(pcm), 320):
                recognition.feed(pcm[offset : offset + 320])
            recognitions.append(recognition)
        async with asyncio.timeout(60):
            heard = await asyncio.gather(*(r.finish() for r in recognitions))
        assert [t.text for t in heard] == list(questions)
        in_thread = grammar_recognizer(brain.language)
        assert [t.text for t in heard] == [in_thread.transcribe(pcm).text for pcm in questions.values()]
        in_thread.close()
        # While a question is pending only its answers are listened for: the named grammar reaches the worker.
        answer = pool.recognition("answers")
        answer.feed(say("ten minutes"))
        assert (await answer.finish()).text == "ten minutes"
        pids = await pool.worker_pids()
        assert len(set(pids)) == 2
    finally:
        await brain.stop()
    for pid in pids:  # stop() ends the workers
        await process_gone(pid)


def pool_free_transcript(pcm: bytes) -> str:
    model = grammar_recognizer(Language.load())
    assert isinstance(model, PocketsphinxModel)
    try:
        return model.transcribe(pcm).text
    finally:
        model.close()


async def test_a_worker_killed_mid_question_costs_that_question_only(say: Callable[..., bytes]) -> None:
    pool = grammar_recognizer(Language.load(), processes=1)
    assert isinstance(pool, SttProcessPool)
    await pool.start()
    try:
        (pid,) = await pool.worker_pids()
        # A question that takes over a second to decode: a command followed by 25 s of a quiet room.
        quiet_room = (np.random.default_rng(1).normal(0, 30, 16000 * 25)).astype("<i2").tobytes()
        long_question = say("what time is it") + quiet_room
        assert pool_free_transcript(long_question) == "what time is it"  # what it would have heard
        recognition = pool.recognition()
        recognition.feed(long_question)
        pending = recognition.finish()
        await asyncio.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        async with asyncio.timeout(60):
            assert (await pending).text == ""  # heard as nothing: the assistant says so, the server goes on
        again = pool.recognition()
        again.feed(say("what time is it"))
        async with asyncio.timeout(60):
            assert (await again.finish()).text == "what time is it"
        assert (await pool.worker_pids()) != [pid]
    finally:
        pool.close()
