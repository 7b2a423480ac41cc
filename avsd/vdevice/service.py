"""``avsd vdevice``: composition of the virtual device (back-end, sessions, speech, store, HTTP API) and its
serve loop. The HTTP server binds to loopback unless ``--host`` says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from avsd.errors import ConfigError
from avsd.vdevice.api import ApiSettings, AudioLinks, VirtualDeviceApi
from avsd.vdevice.fetch import AudioFetcher
from avsd.vdevice.processor import MessageProcessor
from avsd.vdevice.sessions import HeadlessSessions, SessionOpener
from avsd.vdevice.store import SqliteStore
from avsd.vdevice.tokens import TokenBook

if TYPE_CHECKING:
    from avsd.speech.stt_processes import SttProcessPool

_log = logging.getLogger(__name__)

TOKENS_FILE = "vdevice-tokens"


@dataclass(frozen=True, slots=True)
class SpeechFunctions:
    """SpeechEngines from two functions (the shared speech package supplies them); the app that is given them
    closes them."""

    synthesize_fn: Callable[[str, str | None], Awaitable[bytes]]
    transcribe_fn: Callable[[bytes, Sequence[str]], Awaitable[str]]
    close_fn: Callable[[], None] = lambda: None  # ends what the functions hold (worker processes)

    async def synthesize(self, text: str, voice: str | None) -> bytes:
        return await self.synthesize_fn(text, voice)

    async def transcribe(self, pcm16k: bytes, phrases: Sequence[str]) -> str:
        return await self.transcribe_fn(pcm16k, phrases)

    def close(self) -> None:
        self.close_fn()


def load_or_create_tokens(path: Path | None, state_dir: Path) -> tuple[TokenBook, Path]:
    """``--tokens FILE``, or a file of one generated token in the state dir (mode 0600; its path is printed,
    never the token)."""
    if path is not None:
        return TokenBook.from_file(path), path
    generated = state_dir / TOKENS_FILE
    if not generated.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(generated, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("# avsd vdevice tokens: one per line (user_id / virtualDeviceToken)\n")
            handle.write(f"vd-{secrets.token_urlsafe(24)}\n")
    return TokenBook.from_file(generated), generated


@contextlib.asynccontextmanager
async def virtual_device_app(
    open_session: SessionOpener,
    speech: SpeechFunctions,
    tokens: TokenBook,
    state_dir: Path,
    public_url: str,
    *,
    settings: ApiSettings | None = None,
    fetcher: AudioFetcher | None = None,
) -> AsyncIterator[tuple[web.Application, MessageProcessor]]:
    store = SqliteStore(state_dir / "vdevice.sqlite")
    sessions = HeadlessSessions(open_session)
    links = AudioLinks(store, public_url, _url_key(state_dir))
    processor = MessageProcessor(sessions, speech, links)
    api = VirtualDeviceApi(processor, tokens, store, fetcher or AudioFetcher(), settings or ApiSettings(), links)
    try:
        yield api.app(), processor
    finally:
        await sessions.close()
        store.close()
        speech.close()


def prepare_state(state_dir: Path) -> None:
    """Create the store's schema and the URL key now: several worker processes would race to."""
    state_dir.mkdir(parents=True, exist_ok=True)
    SqliteStore(state_dir / "vdevice.sqlite").close()
    _url_key(state_dir)


def _url_key(state_dir: Path) -> bytes:
    """A key that survives restarts, so audio URLs handed out before a restart still work."""
    path = state_dir / "vdevice-url.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key


def bind(host: str, port: int) -> socket.socket:
    """Listen first, so the public URL (audio links) can name the real port before the app is built."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _name, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise ConfigError("--port", f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


def local_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{_url_host(host)}:{port}"


@contextlib.asynccontextmanager
async def serving(app: web.Application, sock: socket.socket) -> AsyncIterator[None]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        yield
    finally:
        await runner.cleanup()


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def print_ready(url: str, tokens_path: Path, backend: str) -> None:
    sys.stdout.write(
        f"avsd vdevice: {url} (back-end {backend})\n"
        f"  tokens: {tokens_path}\n"
        f"  VIRTUAL_DEVICE_BASE_URL={url}\n"
    )
    sys.stdout.flush()


def default_speech(
    voice_rate_wpm: int = 165, *, stt_url: str = "", stt_workers: int = 0, stt_pool: SttProcessPool | None = None
) -> SpeechFunctions:
    """espeak-ng for the utterances (voice_id mapped by avsd.vdevice.voices); for the replies a Wyoming ASR server
    (``assistant.stt_url``, e.g. Home Assistant's faster-whisper) when configured, else pocketsphinx free text (the
    wheel's full language model) in ``stt_workers`` processes (0 = one per core; or the ``stt_pool`` given); the
    request's phrases as hints either way."""
    from avsd.speech.convert import resample
    from avsd.speech.stt_processes import SttProcessPool
    from avsd.speech.tts import espeak_pcm
    from avsd.vdevice.hints import apply_phrase_hints
    from avsd.vdevice.voices import espeak_voice

    # No processes until the first reply to transcribe: `avsd test --help` and Wyoming setups need none.
    pool = None if stt_url else stt_pool or SttProcessPool(stt_workers or os.cpu_count() or 1)

    async def synthesize(text: str, voice: str | None) -> bytes:
        def run() -> bytes:
            return resample(espeak_pcm(text, voice=espeak_voice(voice), rate_wpm=voice_rate_wpm), 16000).data

        return await asyncio.to_thread(run)

    async def transcribe(pcm16k: bytes, phrases: Sequence[str]) -> str:
        if pool is None:
            from avsd.speech.wyoming import WyomingAsr

            recognition = WyomingAsr(stt_url).recognition()
            recognition.feed(pcm16k)
            return apply_phrase_hints((await recognition.finish()).text, phrases)
        # In worker processes: pocketsphinx holds the GIL while it decodes (avsd/speech/stt_processes.py).
        transcript = await pool.transcribe(pcm16k)
        return apply_phrase_hints(transcript.text, phrases)

    return SpeechFunctions(synthesize, transcribe, pool.close if pool is not None else lambda: None)
