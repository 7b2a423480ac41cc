"""A whole device for end-to-end tests: the real Daemon (dialog, wake word, endpointer, AVS client, agents) talking
HTTP/2 + TLS to a real emulator on loopback, with the WAV-sink player as the audible-effect probe.

The microphone is the one part replaced: :class:`FeedSource` is an AudioSource the test feeds real speech WAVs
(espeak-ng fixtures) into, frame by frame, as fast as the loop takes them or at real-time pace. The real PortAudio
path is tested separately through ALSA's file plugin (tests/audio/test_mic.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import wave
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsd.audio.frames import FRAME_BYTES, SAMPLE_RATE
from avsd.audio.wav_source import load_wav
from avsd.avs.credentials import Credentials, save_credentials
from avsd.avs.messages import Directive
from avsd.config import Config, override
from avsd.daemon import Daemon
from avsd.emulator.server import Emulator
from avsd.playback.base import PlaybackSettings
from avsd.root import Players, build_daemon, build_session
from avsd.state import DialogState, Transition
from avsd.wake.base import WakeEngine, WakeSettings

FIXTURES = Path(__file__).parent / "fixtures"
SPEECH = json.loads((FIXTURES / "speech.json").read_text())


def fixture_pcm(name: str) -> bytes:
    return load_wav(FIXTURES / f"{name}.wav")


def room_noise(seconds: float, *, seed: int = 1, level: int = 40) -> bytes:
    """Quiet, unique (seeded) noise: unlike digital silence, any slice of it can be located in a stream."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.integers(-level, level, round(seconds * SAMPLE_RATE), dtype=np.int16).astype("<i2").tobytes()


def with_noise(pcm: bytes, *, seed: int = 2, level: int = 40) -> bytes:
    """``pcm`` with room noise added, so its silent stretches become unique too."""
    import numpy as np

    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    noise = np.frombuffer(room_noise(len(samples) / SAMPLE_RATE, seed=seed, level=level), dtype="<i2")
    return np.clip(samples + noise[: len(samples)], -32768, 32767).astype("<i2").tobytes()


class FeedSource:
    """An AudioSource whose frames the test supplies. Ends when :meth:`end` is called."""

    def __init__(self) -> None:
        self.block_frames = 1  # the test decides how audio is split; recorded for assertions only
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.fed_samples = 0  # absolute sample index of the next frame fed
        self.opened = 0
        self.closed = 0

    def frames(self) -> AsyncIterator[bytes]:
        self.opened += 1
        return self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        while True:
            frame = await self._queue.get()
            if frame is None:
                return
            yield frame

    async def close(self) -> None:
        self.closed += 1

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def feed(self, pcm: bytes, *, realtime: bool = False) -> int:
        """Queue ``pcm`` (whole frames); returns the absolute sample index where it starts."""
        start = self.fed_samples
        if len(pcm) % FRAME_BYTES:
            pcm += bytes(FRAME_BYTES - len(pcm) % FRAME_BYTES)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for n, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
            if realtime:
                delay = t0 + n * 0.01 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            self._queue.put_nowait(pcm[offset : offset + FRAME_BYTES])
            self.fed_samples += FRAME_BYTES // 2
            if not realtime and n % 10 == 0:
                await asyncio.sleep(0)
        return start

    async def feed_silence(self, seconds: float, *, realtime: bool = False) -> int:
        return await self.feed(bytes(round(seconds * SAMPLE_RATE) * 2), realtime=realtime)

    async def drained(self) -> None:
        while not self._queue.empty():
            await asyncio.sleep(0.005)


@dataclass
class Device:
    emulator: Emulator
    daemon: Daemon
    source: FeedSource
    out_dir: Path
    transitions: list[Transition] = field(default_factory=list)
    directives: list[Directive] = field(default_factory=list)  # every directive the client received, in order

    @property
    def states(self) -> list[DialogState]:
        return [t.state for t in self.transitions]

    async def wait_state(self, state: DialogState, timeout: float = 10.0, *, after: int = 0) -> Transition:
        """The first transition into ``state`` at or after index ``after`` of the transition list."""
        async with asyncio.timeout(timeout):
            while True:
                for transition in self.transitions[after:]:
                    if transition.state is state:
                        return transition
                await asyncio.sleep(0.01)

    async def settle(self, timeout: float = 20.0) -> None:
        await self.daemon.settle(timeout)

    def replies(self) -> list[Path]:
        return sorted(self.out_dir.glob("*.wav"))


def read_wav(path: Path) -> tuple[int, bytes]:
    with wave.open(str(path), "rb") as wav:
        return wav.getframerate(), wav.readframes(wav.getnframes())


@contextlib.asynccontextmanager
async def running_device(
    tmp_path: Path,
    *,
    emulator: Emulator | None = None,
    settings: Iterable[tuple[str, Any]] = (),
    wake: WakeSettings | None = None,
    players: Players | None = None,
    engine: WakeEngine | None = None,
    headless: bool = False,
    **emulator_kwargs: Any,
) -> AsyncIterator[Device]:
    """Start (or use) an emulator, then the daemon against it; stop both afterwards. The daemon is built by the
    composition root exactly as ``avsd run`` builds it; only the microphone is a :class:`FeedSource`. ``headless``:
    built as a headless session is (:func:`avsd.root.build_session`: capture players, no wake word)."""
    async with contextlib.AsyncExitStack() as stack:
        if emulator is None:
            emulator = await stack.enter_async_context(Emulator(cert_dir=tmp_path / "certs", **emulator_kwargs))
        state_dir = tmp_path / "state"
        out_dir = tmp_path / "played"
        save_credentials(state_dir / "credentials.json", Credentials("avsd-test", emulator.refresh_token))
        config = Config()
        config = override(config, "avs.endpoint", emulator.base_url)
        config = override(config, "avs.ca_file", str(emulator.ca_file))
        config = override(config, "avs.backoff_s", [0.05, 0.1, 0.2])
        config = override(config, "daemon.state_dir", str(state_dir))
        config = dataclasses.replace(config, playback=PlaybackSettings(backend="wav", wav_dir=str(out_dir)))
        # (settings below may override playback keys, e.g. ("playback.wav_realtime", True))
        if wake is not None:
            config = dataclasses.replace(config, wake=wake)
        for key, value in settings:
            config = override(config, key, value)
        source = FeedSource()
        if headless:
            daemon = build_session(config, open_audio=lambda: source, players=players)
        else:
            daemon = build_daemon(config, open_audio=lambda: source, players=players, engine=engine)
        device = Device(emulator, daemon, source, out_dir)
        daemon.dialog.machine.add_observer(device.transitions.append, name="harness")
        daemon.client.directive_observers.add(device.directives.append)
        task = asyncio.create_task(daemon.run(wait_for_connection_s=10.0), name="daemon-under-test")
        try:
            await daemon.client.wait_connected(10)
            device.transitions.clear()  # tests look at what happens after the device came online
            yield device
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
