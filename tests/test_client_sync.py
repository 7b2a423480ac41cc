"""avsd.Client (synchronous, its own event-loop thread) against the local AVS server in another thread."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator

import pytest

import avsd
from avsd.emulator.server import Emulator
from avsd.errors import AuthError, AvsConnectionError, NotConnectedError
from tests.harness import FIXTURES, fixture_pcm
from tests.library_helpers import mp3_seconds

WAV = FIXTURES / "alexa-what-time-is-it.wav"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The emulator on its own loop in a thread, as a separate server process would be."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    emu = Emulator()
    asyncio.run_coroutine_threadsafe(emu.start(), loop).result(10)
    try:
        yield emu
    finally:
        asyncio.run_coroutine_threadsafe(emu.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_sync_client_file_text_ping_and_threads(emulator: Emulator) -> None:
    with avsd.Client("avsd-test", None, emulator.refresh_token, emulator.base_url, ca_file=emulator.ca_file) as c:
        with WAV.open("rb") as f:
            directives = c.send_audio_file(f)
        assert directives[0].name == "Speak" and mp3_seconds(directives[0].audio_attachment or b"") > 0.5
        assert c.ask_text("what time is it").speech
        c.ping()
        results: list[int] = []

        def worker() -> None:
            results.append(len(c.ask(fixture_pcm("alexa")).speech))

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == 3 and all(results)
        loop_thread = c._thread
    assert not loop_thread.is_alive()  # close() ended the client's loop thread
    with pytest.raises(NotConnectedError):
        c.ping()


def test_sync_close_while_another_thread_asks(emulator: Emulator) -> None:
    client = avsd.Client("avsd-test", None, emulator.refresh_token, emulator.base_url, ca_file=emulator.ca_file)
    client.connect()
    buffer = io.BytesIO()  # a microphone buffer that nobody closes
    stop = threading.Event()
    errors: list[BaseException] = []

    def microphone() -> None:
        while not stop.is_set():
            buffer.write(bytes(320))
            time.sleep(0.01)

    def asker() -> None:
        try:
            client.ask(buffer)
        except BaseException as exc:
            errors.append(exc)

    mic, ask = threading.Thread(target=microphone), threading.Thread(target=asker)
    mic.start()
    ask.start()
    deadline = time.monotonic() + 10
    while not any(r.qualified_name == "SpeechRecognizer.Recognize" for r in emulator.records):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    client.close()
    ask.join(10)
    stop.set()
    mic.join(5)
    assert not ask.is_alive() and time.monotonic() - started < 5.0
    assert len(errors) == 1 and isinstance(errors[0], AvsConnectionError)


def test_sync_bad_credentials_raise_and_leave_no_thread(emulator: Emulator) -> None:
    before = threading.active_count()
    with pytest.raises(AuthError, match="invalid_grant"):  # noqa: SIM117 - the with statement is what is tested
        with avsd.Client("avsd-test", None, "Atzr|wrong", emulator.base_url, ca_file=emulator.ca_file):
            pass
    assert threading.active_count() == before
