from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures import speechgen


@pytest.fixture(scope="session")
def say():  # type: ignore[no-untyped-def]
    """espeak-ng speech as 16 kHz PCM bytes, with 0.3 s silence before and 0.6 s after, light room noise."""
    if not speechgen.have_tools():
        pytest.skip("needs espeak-ng and sox (scripts/apt-packages.txt)")

    def make(text: str, voice: str = "en-us", speed: int = 150) -> bytes:
        pcm = np.concatenate([speechgen.silence(0.3), speechgen.synth(text, voice, speed), speechgen.silence(0.6)])
        return speechgen.add_noise(pcm, 25, seed=len(text)).astype("<i2").tobytes()

    return make
