"""Replies transcribed in worker processes: real pocketsphinx, real processes, a real SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable

import pytest

from avsd.speech.convert import decode_mp3, resample
from avsd.speech.stt import PocketsphinxModel
from avsd.speech.stt_processes import SttProcessPool, SttWorkerError, warmed_up_model
from avsd.speech.tts import espeak_pcm, synthesize_mp3
from tests.processes import process_gone
from tests.vdevice.conftest import REPLY

pytestmark = pytest.mark.timeout(120)


def speech(text: str) -> bytes:
    return resample(espeak_pcm(text), 16000).data


@pytest.fixture
async def pool() -> AsyncIterator[SttProcessPool]:
    stt = SttProcessPool(2)
    await stt.start()
    yield stt
    stt.close()


async def test_workers_transcribe_as_a_warmed_up_model_in_process_does(pool: SttProcessPool) -> None:
    pcm = speech(REPLY)
    expected = (await asyncio.to_thread(lambda: warmed_up_model({}).transcribe(pcm))).text
    assert "players" in expected
    first, second = await asyncio.gather(pool.transcribe(pcm), pool.transcribe(pcm))
    assert first.text == second.text == expected
    pids = await pool.worker_pids()
    assert len(set(pids)) == 2 and os.getpid() not in pids


async def test_the_warm_up_makes_a_fresh_worker_hear_better() -> None:
    # A fresh decoder's first reply, with the model's generic cepstral mean against the warmed-up one that each
    # worker starts with; replies as the local server sends them (espeak-ng -> MP3).
    said = ["It is ten thirty in the morning", "Sorry I did not understand that", "Playing music from your library",
            "I set an alarm for seven thirty tomorrow morning"]
    replies = [decode_mp3(synthesize_mp3(text), 16000).data for text in said]

    def heard(load: Callable[[], PocketsphinxModel]) -> list[str]:
        return [load().transcribe(pcm).text for pcm in replies]

    cold, warm = await asyncio.gather(asyncio.to_thread(heard, PocketsphinxModel),
                                      asyncio.to_thread(heard, lambda: warmed_up_model({})))
    right = [text.lower() for text in said]
    exact_warm = sum(w == r for w, r in zip(warm, right, strict=True))
    assert exact_warm > sum(c == r for c, r in zip(cold, right, strict=True)), (cold, warm)


async def test_a_killed_worker_fails_only_its_own_reply(pool: SttProcessPool) -> None:
    long_reply = speech(" ".join([REPLY] * 4))  # ~12 s of speech: seconds of decoding, time to kill one
    victim = (await pool.worker_pids())[0]
    decodes = [asyncio.create_task(pool.transcribe(long_reply)) for _ in range(2)]
    await asyncio.sleep(0.5)
    os.kill(victim, signal.SIGKILL)
    outcomes = await asyncio.gather(*decodes, return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], SttWorkerError), outcomes
    survivor = next(o for o in outcomes if not isinstance(o, BaseException))
    assert "players" in survivor.text
    # replaced: two workers again, the victim not among them, and both decode
    pids = await pool.worker_pids()
    assert len(pids) == 2 and victim not in pids
    again = await asyncio.gather(pool.transcribe(speech(REPLY)), pool.transcribe(speech(REPLY)))
    assert all("players" in t.text for t in again)


async def test_a_worker_killed_while_idle_costs_no_reply(pool: SttProcessPool) -> None:
    pcm = speech(REPLY)
    victims = await pool.worker_pids()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    for pid in victims:
        await process_gone(pid)
    await asyncio.sleep(0.2)  # the executors notice
    results = await asyncio.gather(pool.transcribe(pcm), pool.transcribe(pcm))
    assert all("players" in r.text for r in results)
    assert not set(victims) & set(await pool.worker_pids())
