"""What answers a caller: each call's turns are asks of a :class:`~avsd.session.HeadlessSession`.

The sessions are the library's and ``avsd ask``'s (built by :func:`avsd.root.build_headless_session`), for the
Alexa that :func:`avsd.backends.open_backend` started or names. Amazon: ONE session (one HTTP/2 connection) shared
by every call, because Amazon allows one connection per device; its asks run side by side, each with its own
dialog request id. The local server (``emulator``, ``assistant``): one session per call, because a connection lets
only one event wait for its response headers at a time and the local server answers a Recognize once its upload is
complete, so the calls' questions would queue behind each other on a shared one.

A call's utterance is one ``Recognize`` (NEAR_FIELD: the ``TAP`` initiator). After a reply that expects speech the
next utterance answers it (the same dialog request id, the ExpectSpeech initiator echoed: ``HeadlessSession.ask``),
and ExpectSpeech's timeout runs from when the reply has played to the caller (not from when it arrived) until the
caller starts to speak, as a device's microphone opens after the speech.
Directives that belong to no ask (downchannel pushes: an alert a caller set going off) go to the session's
sequencer, which has no alerts, speaker or audio player agent: they reach no caller and nothing on the Pi plays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from avsd.reply import DistanceProfile, Reply

if TYPE_CHECKING:
    from avsd.backends import BackendSession
    from avsd.config import Config
    from avsd.session import HeadlessSession

ANSWER_TIMEOUT_S = 20.0


class CallSession:
    """One caller's dialog on a session: its asks, and the reply that expects speech (answered next)."""

    def __init__(self, session: HeadlessSession, *, owned: bool, answer_timeout_s: float) -> None:
        self.session = session
        self._owned = owned
        self._answer_timeout_s = answer_timeout_s
        self._expecting: str | None = None  # the dialog request id of a reply that expects speech
        self.dialog_request_ids: list[str] = []

    async def ask(self, pcm16k: bytes) -> Reply:
        drid, self._expecting = self._expecting, None
        reply = await self.session.ask(
            pcm16k, dialog_request_id=drid, profile=DistanceProfile.NEAR_FIELD, timeout=self._answer_timeout_s,
            expect_timer=False,
        )
        self.dialog_request_ids.append(reply.dialog_request_id)
        if reply.expects_speech:
            self._expecting = reply.dialog_request_id
        return reply

    def listening(self) -> None:
        """The reply has played (or was stopped): the caller may answer an ExpectSpeech from now on."""
        if self._expecting is not None:
            self.session.listening(self._expecting)

    def answering(self) -> None:
        """The caller has started to speak (confirmed speech): an ExpectSpeech no longer times out."""
        if self._expecting is not None:
            self.session.answering(self._expecting)

    async def aclose(self) -> None:
        if self._expecting is not None:
            self.session.end_dialog(self._expecting)
            self._expecting = None
        if self._owned:
            await self.session.close()


class CallBackend:
    """Opens each call's :class:`CallSession`. ``per_call``: a session of its own (see the module's text), else
    one shared session, connected on entry. Use as an async context manager."""

    def __init__(
        self,
        open_session: Callable[[], HeadlessSession],
        *,
        per_call: bool,
        answer_timeout_s: float = ANSWER_TIMEOUT_S,
    ) -> None:
        self._open_session = open_session
        self.per_call = per_call
        self.answer_timeout_s = answer_timeout_s
        self._shared: HeadlessSession | None = None

    async def __aenter__(self) -> CallBackend:
        if not self.per_call:
            self._shared = await self._connected()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            await shared.close()

    async def _connected(self) -> HeadlessSession:
        session = self._open_session()
        try:
            await session.connect()  # AuthError / AvsConnectionError: this call (or the bridge) cannot start
        except BaseException:
            await session.close()
            raise
        return session

    async def open_call(self, caller: str) -> CallSession:
        if self._shared is not None:
            return CallSession(self._shared, owned=False, answer_timeout_s=self.answer_timeout_s)
        return CallSession(await self._connected(), owned=True, answer_timeout_s=self.answer_timeout_s)


def call_backend(where: BackendSession, config: Config) -> CallBackend:
    """The calls' back-end for ``where`` (:func:`avsd.backends.open_backend`): a local server gets a session per
    call with its refresh token; Amazon one shared session with the configured endpoint and credentials."""
    from avsd.root import build_headless_session

    if where.refresh_token is None:
        return CallBackend(
            lambda: build_headless_session(
                config.avs, credentials_path=config.credentials_path, token_url=config.token_url(),
                ask_timeout_s=ANSWER_TIMEOUT_S,
            ),
            per_call=False,
        )
    from avsd.avs.credentials import Credentials

    settings = dataclasses.replace(config.avs, endpoint=where.endpoint, ca_file=where.ca_file)
    credentials = Credentials("avsd-phone", where.refresh_token)
    return CallBackend(
        lambda: build_headless_session(
            settings, credentials=credentials, token_url=where.endpoint + "/auth/o2/token",
            ask_timeout_s=ANSWER_TIMEOUT_S,
        ),
        per_call=True,
    )
