"""Wake-word test helpers: fixture WAVs, a generated corpus and a frame feeder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avsd.audio.frames import FRAME_BYTES
from avsd.wake.base import Detection, WakeEngine
from tests.fixtures import speechgen

FIXTURES = Path(__file__).parent.parent / "fixtures"

needs_tools = pytest.mark.skipif(
    not speechgen.have_tools(), reason="espeak-ng and sox are needed to synthesise speech"
)


def feed(engine: WakeEngine, pcm: bytes | np.ndarray, first_index: int = 0) -> list[Detection]:
    data = pcm.tobytes() if isinstance(pcm, np.ndarray) else pcm
    found = []
    for offset in range(0, len(data) - FRAME_BYTES + 1, FRAME_BYTES):
        det = engine.process(data[offset : offset + FRAME_BYTES], first_index + (offset + FRAME_BYTES) // 2)
        if det is not None:
            found.append(det)
    return found


def wav_bytes(name: str) -> bytes:
    return speechgen.read_wav(FIXTURES / name).tobytes()


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[speechgen.Sample]:
    if not speechgen.have_tools():
        pytest.skip("espeak-ng and sox are needed to synthesise speech")
    return speechgen.corpus(tmp_path_factory.mktemp("corpus"), size="small")
