"""The telephone bridge: the web routes of both providers, the call table, and the API for host programs.

Embedding::

    bridge = PhoneBridge(settings, backend, secrets=PhoneSecrets.from_env(settings))
    bridge.utterance_hooks.append(save_somewhere)        # the seed's Processor.process
    async with WebServer(bridge.app(), settings.host, settings.port):
        ...
        bridge.play("+15550001", pcm16k)                  # to a caller, by number
        await bridge.hang_up("+15550001")
"""

from __future__ import annotations

import logging
import wave
from pathlib import Path

from aiohttp import web

from avsd.phone.backend import CallBackend
from avsd.phone.call import Call, DtmfHook, LineTransport, Utterance, UtteranceHook
from avsd.phone.settings import PhoneSecrets, PhoneSettings
from avsd.web import OneTimeTokens

_LOGGER = logging.getLogger(__name__)


class RecordingHook:
    """``phone.record_dir``: each utterance as ``<call id>-<n>.wav``. Only when configured."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._count = 0

    def __call__(self, utterance: Utterance) -> None:
        self._count += 1
        path = self.directory / f"{utterance.call_id}-{self._count}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(utterance.pcm)


class PhoneBridge:
    def __init__(self, settings: PhoneSettings, backend: CallBackend | None, secrets: PhoneSecrets) -> None:
        self.settings = settings
        self.backend = backend
        self.secrets = secrets
        self.tokens = OneTimeTokens(settings.token_ttl_s)
        self.calls_by_caller: dict[str, Call] = {}
        self.calls_by_id: dict[str, Call] = {}  # Twilio streamSid / Vonage call uuid
        self.utterance_hooks: list[UtteranceHook] = []
        self.dtmf_hooks: list[DtmfHook] = []
        self.ended: list[Call] = []  # the last few calls, for benchmarks and `status`
        if settings.record_dir:
            self.utterance_hooks.append(RecordingHook(Path(settings.record_dir)))

    def public_origin(self, request: web.Request) -> str:
        """The configured public origin; the request's own Host only when none is configured (loopback use)."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return f"http://{request.host}"

    def app(self) -> web.Application:
        from avsd.phone.twilio import twilio_routes
        from avsd.phone.vonage import vonage_routes
        from avsd.web import create_app

        return create_app([*twilio_routes(self), *vonage_routes(self)])

    async def open_call(self, caller: str, call_id: str, transport: LineTransport) -> Call:
        session = await self.backend.open_call(caller) if self.backend is not None else None
        call = Call(
            caller=caller,
            call_id=call_id,
            transport=transport,
            session=session,
            segmenter=self.settings.segmenter,
            utterance_hooks=self.utterance_hooks,
            dtmf_hooks=self.dtmf_hooks,
            lead_frames=max(0, round(self.settings.lead_ms / 20)),
        )
        previous = self.calls_by_caller.get(caller)
        if previous is not None:
            _LOGGER.info("caller already on call %s; the new call %s takes the number", previous.call_id, call_id)
        self.calls_by_caller[caller] = call
        self.calls_by_id[call_id] = call
        _LOGGER.info("call %s started (%d active)", call_id, len(self.calls_by_id))
        return call

    async def end_call(self, call: Call) -> None:
        await call.close()
        if self.calls_by_caller.get(call.caller) is call:
            del self.calls_by_caller[call.caller]
        self.calls_by_id.pop(call.call_id, None)
        self.ended = [*self.ended[-99:], call]
        _LOGGER.info("call %s ended (%d active)", call.call_id, len(self.calls_by_id))

    # ----- API for host programs -----------------------------------------------------------------------------

    def play(self, caller: str, pcm: bytes, rate: int = 16000) -> None:
        """Play 16-bit mono PCM to the caller on ``caller``'s call."""
        self._call(caller).play(pcm, rate)

    async def hang_up(self, caller: str) -> None:
        call = self._call(caller)
        await call.hang_up()
        await self.end_call(call)

    def _call(self, caller: str) -> Call:
        call = self.calls_by_caller.get(caller)
        if call is None:
            raise KeyError(f"no call from {caller}")
        return call
