"""avsd as a Python library: :class:`AsyncClient` (asyncio) and :class:`Client` (synchronous, its own loop thread).

Both sit on a :class:`~avsd.session.HeadlessSession` (one AVS device identity, one HTTP/2 connection). The call
names follow richtier's ``alexa_client`` so that moving over is a small diff (docs/library.md has the table)::

    with avsd.Client(client_id, secret, refresh_token, base_url="EU") as client:
        for directive in client.send_audio_file(open("question.wav", "rb")):
            if directive.name in ("Speak", "Play"):
                open(f"{directive.message_id}.mp3", "wb").write(directive.audio_attachment or b"")

Every error is from avsd's tree (:mod:`avsd.errors`): a refused login is AuthError (with LWA's reason), a 4xx/5xx
from AVS is AvsServerError, a timeout or a lost connection is AvsConnectionError.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import CancelledError as FutureCancelledError
from concurrent.futures import Future, wait
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from avsd.avs.auth import DEFAULT_TOKEN_URL
from avsd.avs.client import REGIONS, ConnectionSettings, resolve_endpoint
from avsd.avs.credentials import Credentials
from avsd.errors import AvsConnectionError, NotConnectedError
from avsd.session import (
    AudioFormat,
    DistanceProfile,
    HeadlessSession,
    Reply,
    ReplyDirective,
)
from avsd.session_audio import AudioInput, text_to_pcm

T = TypeVar("T")

# alexa_client.constants, same values.
CLOSE_TALK = DistanceProfile.CLOSE_TALK
NEAR_FIELD = DistanceProfile.NEAR_FIELD
FAR_FIELD = DistanceProfile.FAR_FIELD
PCM = AudioFormat.PCM
OPUS = AudioFormat.OPUS


def token_url_for(base_url: str) -> str:
    """Amazon's LWA for the Amazon regions; a local server (any other URL) serves LWA itself."""
    if base_url.strip().upper() in REGIONS or "amazon" in base_url or "a2z.com" in base_url:
        return DEFAULT_TOKEN_URL
    return resolve_endpoint(base_url) + "/auth/o2/token"


class AsyncClient:
    """One AVS device identity. ``client_id``/``secret``/``refresh_token`` as alexa_client takes them; no
    refresh token and no ``credentials_file`` = no credentials (a local server that accepts any token)."""

    def __init__(
        self,
        client_id: str | None = None,
        secret: str | None = None,
        refresh_token: str | None = None,
        base_url: str | None = None,
        *,
        credentials_file: str | Path | None = None,
        ca_file: str | Path = "",
        token_url: str = "",
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        on_directive: Callable[[ReplyDirective], None] | None = None,
    ) -> None:
        endpoint = base_url or "NA"  # NA, EU, FE or any base URL
        self._settings = ConnectionSettings(
            endpoint=endpoint,
            ca_file=str(ca_file),
            connect_timeout_s=connect_timeout,
            event_timeout_s=timeout,
        )
        self._credentials = Credentials(client_id or "", refresh_token, secret or None) if refresh_token else None
        self._credentials_file = Path(credentials_file) if credentials_file else None
        self._token_url = token_url or token_url_for(endpoint)
        self._timeout = timeout
        self._on_directive = on_directive
        self._session: HeadlessSession | None = None

    @classmethod
    def from_credentials_file(cls, path: str | Path | None = None, base_url: str | None = None, **kwargs: Any) -> Self:
        """Credentials from avsd's credentials file (``avsd login`` wrote it; default: avsd's state dir)."""
        if path is None:
            from avsd.config import Config

            path = Config().credentials_path
        return cls(base_url=base_url, credentials_file=path, **kwargs)

    @property
    def base_url(self) -> str:
        return resolve_endpoint(self._settings.endpoint)

    @property
    def session(self) -> HeadlessSession:
        if self._session is None:
            raise NotConnectedError("not connected: call connect() first")
        return self._session

    async def connect(self) -> None:
        """Get an access token, open the HTTP/2 connection and the downchannel, send SynchronizeState."""
        if self._session is None:
            from avsd.root import build_headless_session  # the composition root (its imports cost ~0.2 s)

            self._session = build_headless_session(
                self._settings,
                credentials=self._credentials,
                credentials_path=self._credentials_file,
                token_url=self._token_url,
                ask_timeout_s=self._timeout,
            )
            if self._on_directive is not None:
                self._session.directive_observers.append(self._on_directive)
        await self._session.connect()

    async def ask(
        self,
        audio: AudioInput,
        *,
        dialog_request_id: str | None = None,
        distance_profile: DistanceProfile | str = CLOSE_TALK,
        audio_format: AudioFormat | str = PCM,
    ) -> Reply:
        """The whole reply: directives, speech MP3, caption, card, stream URL, ExpectSpeech."""
        return await self.session.ask(
            audio, dialog_request_id=dialog_request_id, profile=distance_profile, audio_format=audio_format
        )

    async def send_audio_file(
        self,
        audio_file: AudioInput,
        dialog_request_id: str | None = None,
        distance_profile: DistanceProfile | str = CLOSE_TALK,
        audio_format: AudioFormat | str = PCM,
    ) -> list[ReplyDirective]:
        """alexa_client's call: the reply's directives (an empty list for 204 "nothing to say")."""
        reply = await self.ask(
            audio_file, dialog_request_id=dialog_request_id, distance_profile=distance_profile,
            audio_format=audio_format,
        )
        return list(reply.directives)

    async def ask_text(self, text: str, *, dialog_request_id: str | None = None) -> Reply:
        """Say ``text`` with text-to-speech (espeak-ng) and ask that."""
        pcm = await asyncio.to_thread(text_to_pcm, text)
        return await self.ask(pcm, dialog_request_id=dialog_request_id)

    async def ping(self) -> None:
        await self.session.ping()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> AsyncClient:
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Client:
    """The synchronous client: the same calls as :class:`AsyncClient`, run on its own event-loop thread.

    Methods may be called from any thread; several threads may ask at once (they share the one connection).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._async = AsyncClient(*args, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="avsd-client", daemon=True)
        self._thread.start()
        self._closed = False
        self._pending: set[Future[Any]] = set()

    @classmethod
    def from_credentials_file(cls, path: str | Path | None = None, base_url: str | None = None, **kwargs: Any) -> Self:
        if path is None:
            from avsd.config import Config

            path = Config().credentials_path
        return cls(base_url=base_url, credentials_file=path, **kwargs)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise NotConnectedError("the client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        try:
            return future.result()
        except FutureCancelledError:
            raise AvsConnectionError("the request was cancelled (client closed)") from None
        except KeyboardInterrupt:
            future.cancel()
            raise

    @property
    def base_url(self) -> str:
        return self._async.base_url

    def connect(self) -> None:
        self._run(self._async.connect())

    def ask(self, audio: AudioInput, **kwargs: Any) -> Reply:
        return self._run(self._async.ask(audio, **kwargs))

    def send_audio_file(
        self,
        audio_file: AudioInput,
        dialog_request_id: str | None = None,
        distance_profile: DistanceProfile | str = CLOSE_TALK,
        audio_format: AudioFormat | str = PCM,
    ) -> list[ReplyDirective]:
        return self._run(
            self._async.send_audio_file(audio_file, dialog_request_id, distance_profile, audio_format)
        )

    def ask_text(self, text: str, *, dialog_request_id: str | None = None) -> Reply:
        return self._run(self._async.ask_text(text, dialog_request_id=dialog_request_id))

    def ping(self) -> None:
        self._run(self._async.ping())

    def close(self) -> None:
        """Close the connection (a request in flight on another thread raises AvsConnectionError) and the loop."""
        if self._closed:
            return
        self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._async.close(), self._loop).result()
            # Requests of other threads end with AvsConnectionError once the session is closed; let them.
            wait(list(self._pending), timeout=5.0)
        finally:
            for future in list(self._pending):
                future.cancel()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10.0)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> Client:
        try:
            self.connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = [
    "CLOSE_TALK",
    "FAR_FIELD",
    "NEAR_FIELD",
    "OPUS",
    "PCM",
    "AsyncClient",
    "AudioFormat",
    "Client",
    "DistanceProfile",
    "Reply",
    "ReplyDirective",
]
