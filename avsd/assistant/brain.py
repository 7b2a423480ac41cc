"""The offline assistant as a brain of the local AVS server: speech -> text -> intent -> directives.

A Recognize's audio is decoded while it uploads. When the server's endpointer hears the end of speech (the
moment it pushes StopCapture) the turn finishes recognition, runs the skill and starts the TTS at once, so the
answer is usually ready before the device has even closed its upload. Replies are Speak directives carrying
their text as a caption (SpeechSynthesizer 1.3 ``caption``: WebVTT, as Amazon sends it), followed by the skill's
directives (SetAlert, DeleteAlert, SetVolume, Play, ...) and an ExpectSpeech when a question was asked.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from avsd.assistant.grammar import FALLBACK_INTENT, Language
from avsd.assistant.music import MusicLibrary, MusicServer
from avsd.assistant.settings import AssistantSettings
from avsd.assistant.skills import EXPECT_SPEECH_TIMEOUT_MS, DeviceState, Reply, Skills, SkillSettings
from avsd.emulator.brains import Answer, Turn
from avsd.emulator.scenario import DirectiveSpec
from avsd.speech.stt import PocketsphinxModel, SecondPass, Transcript
from avsd.speech.stt_processes import SttProcessPool
from avsd.speech.tts import EspeakTts, SpeechSynthesizer, TtsSettings

_log = logging.getLogger(__name__)

RECOGNIZE = "SpeechRecognizer.Recognize"


ANSWERS_GRAMMAR = "answers"  # commands + bare slot values, while a question is pending


class SpeechRecognition(Protocol):
    def feed(self, pcm: bytes) -> None: ...

    def finish(self) -> asyncio.Future[Transcript]: ...


class Recognizer(Protocol):
    def recognition(self, grammar: str | None = None) -> SpeechRecognition: ...




@dataclass(frozen=True, slots=True)
class ParsesToFallback:
    """Whether a transcript means nothing to the language (SecondPass.needed). A class, not a lambda, so the
    model description can be pickled to decoder worker processes."""

    language: Language

    def __call__(self, text: str) -> bool:
        return self.language.parse(text).name == FALLBACK_INTENT


def grammar_recognizer(
    language: Language, *, reject_unknown: bool = True, processes: int = 0
) -> PocketsphinxModel | SttProcessPool:
    """pocketsphinx with the language's two grammars: commands, and answers while a question is pending. In a
    thread of this process (``processes=0``: one utterance at a time, the appliance), or in ``processes`` worker
    processes that decode side by side (pocketsphinx holds the GIL while it decodes). ``reject_unknown``: each
    grammar with a weighted "something else" word loop, and a second pass (without the loop) for what landed in
    it, so a command the loop swallowed is still heard if it fits the audio well."""
    jsgf = {
        "commands": language.jsgf(reject_unknown=reject_unknown),
        ANSWERS_GRAMMAR: language.jsgf(answers=True, reject_unknown=reject_unknown),
    }
    # The second pass also allows a hesitation before the command: in the first pass it cost accuracy and
    # rejection (module doc of avsd.speech.stt), here only what the loop took is decoded, and the confidence
    # check still applies ("um, what time is it" was heard as the loop's "them what side these it").
    second = SecondPass(
        {
            "commands": language.jsgf(reject_unknown=False, hesitations=True),
            ANSWERS_GRAMMAR: language.jsgf(answers=True, reject_unknown=False, hesitations=True),
        },
        needed=ParsesToFallback(language),
    )
    words, pronunciations = sorted(language.vocabulary()), dict(language.pronunciations)
    second_pass = second if reject_unknown else None
    if processes > 0:
        model = {"jsgf": jsgf, "words": words, "pronunciations": pronunciations, "second_pass": second_pass}
        return SttProcessPool(processes, grammar_model=model)
    return PocketsphinxModel(jsgf=jsgf, words=words, pronunciations=pronunciations, second_pass=second_pass)


def caption(text: str, seconds: float) -> dict[str, str]:
    """SpeechSynthesizer 1.3 caption: the spoken text as one WebVTT cue."""
    end = max(seconds, 0.5)
    stamp = f"{int(end // 3600):02d}:{int(end % 3600 // 60):02d}:{end % 60:06.3f}"
    return {"type": "WEBVTT", "content": f"WEBVTT\n\n1\n00:00:00.000 --> {stamp}\n{text}"}


def _speech_seconds(text: str, rate_wpm: int) -> float:
    return len(text.split()) * 60.0 / rate_wpm + 0.3


class AssistantBrain:
    """Skills answer; pocketsphinx (or a Wyoming ASR) listens; espeak-ng (or a Wyoming TTS) speaks."""

    def __init__(
        self,
        settings: AssistantSettings | None = None,
        *,
        recognizer: Recognizer | None = None,
        tts: SpeechSynthesizer | None = None,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now().astimezone(),
        skill_settings: SkillSettings | None = None,
    ) -> None:
        self.settings = settings or AssistantSettings()
        self.music = MusicLibrary(Path(self.settings.music_dir)) if self.settings.music_dir else None
        self.music_server: MusicServer | None = None
        names = self.music.names() if self.music is not None else []
        if names and recognizer is None:
            names = _sayable(names, self.settings.locale)
        self.language = Language.load(self.settings.locale, music_names=names)
        self.skills = Skills(self.language, skill_settings or SkillSettings(clock_24h=self.settings.clock_24h))
        self.tts: SpeechSynthesizer = tts or EspeakTts(TtsSettings(self.settings.voice, self.settings.rate_wpm))
        self.recognizer: Recognizer = recognizer or grammar_recognizer(
            self.language, reject_unknown=self.settings.reject_unknown, processes=self.settings.decoder_processes
        )
        self.now = now
        self.turns: list[TurnRecord] = []  # the last few turns, for tests, the bench and the demo log

    async def start(self) -> None:
        """Load the decoder processes (if any: a broken model fails here), and serve the music folder (if any)
        on loopback HTTP for the device's AudioPlayer."""
        if isinstance(self.recognizer, SttProcessPool):
            await self.recognizer.start()
        if self.music is not None and self.music_server is None:
            self.music_server = MusicServer(self.music)
            await self.music_server.start()

    async def stop(self) -> None:
        if isinstance(self.recognizer, SttProcessPool):
            self.recognizer.close()
        if self.music_server is not None:
            await self.music_server.stop()
            self.music_server = None

    # ------------------------------------------------------------------------------------------ Brain

    def recognize(self, event: Mapping[str, Any]) -> Turn:
        return _AssistantTurn(self, event)

    async def on_event(self, event: Mapping[str, Any]) -> Answer:
        header = (event.get("event") or {}).get("header") or {}
        name = f"{header.get('namespace')}.{header.get('name')}"
        if self.music is None or self.music_server is None:
            return Answer()
        state = DeviceState.from_event(event)
        token = str(((event.get("event") or {}).get("payload") or {}).get("token", "")) or state.player_token
        if name == "PlaybackController.NextCommandIssued":
            return Answer(self._music_directives("next", state))
        if name == "PlaybackController.PreviousCommandIssued":
            return Answer(self._music_directives("previous", state))
        if name == "PlaybackController.PlayCommandIssued":
            return Answer(self._music_directives("resume", state))
        if name == "PlaybackController.PauseCommandIssued":
            return Answer((DirectiveSpec("AudioPlayer", "Stop", {}),))
        if name == "AudioPlayer.PlaybackNearlyFinished":
            nxt = self.music.after(token)
            if nxt is not None:
                return Answer((self.music_server.play(nxt, "ENQUEUE", expected_previous=token),))
        return Answer()

    async def speech(self, text: str) -> bytes:
        return await self.tts.mp3(text)

    # ------------------------------------------------------------------------------------------ turn

    async def respond(self, text: str, event: Mapping[str, Any]) -> tuple[Reply, tuple[DirectiveSpec, ...]]:
        state = DeviceState.from_event(event)
        intent = self.language.parse(text) if text.strip() else None
        if intent is None:
            reply = Reply(self.skills.say("not_heard"))
        else:
            reply = self.skills.handle(intent, state, self.now())
            _log.info("assistant: heard %r -> %s %s", text, intent.name, dict(intent.slots))
        specs: list[DirectiveSpec] = []
        extra = reply.directives
        if reply.music is not None:
            music_text, extra = self._music(reply.music, state)
            reply = Reply(music_text, extra, reply.expect)
        if reply.text:
            speak_payload = {"caption": caption(reply.text, _speech_seconds(reply.text, self.settings.rate_wpm))}
            specs.append(DirectiveSpec("SpeechSynthesizer", "Speak", speak_payload, speech=reply.text))
        specs.extend(extra)
        if reply.expect is not None:
            specs.append(
                DirectiveSpec(
                    "SpeechRecognizer",
                    "ExpectSpeech",
                    {"timeoutInMilliseconds": EXPECT_SPEECH_TIMEOUT_MS, "initiator": dict(reply.expect)},
                )
            )
        return reply, tuple(specs)

    def _music(self, command: str, state: DeviceState) -> tuple[str, tuple[DirectiveSpec, ...]]:
        if self.music is None or self.music_server is None or not self.music.tracks:
            return self.skills.say("music_none"), ()
        if command.startswith("play:"):
            query = command[5:]
            track = self.music.find(query) if query else self.music.tracks[0]
            if track is None:
                return self.skills.say("music_not_found", query=query), ()
            return self.skills.say("music_playing", title=track.title), (self.music_server.play(track, "REPLACE_ALL"),)
        return "", self._music_directives(command, state)

    def _music_directives(self, command: str, state: DeviceState) -> tuple[DirectiveSpec, ...]:
        assert self.music is not None and self.music_server is not None
        current = self.music.by_token(state.player_token)
        if command == "next":
            track = self.music.after(state.player_token)
        elif command == "previous":
            track = self.music.before(state.player_token)
        else:  # resume where it stopped
            if current is None:
                return ()
            return (self.music_server.play(current, "REPLACE_ALL", offset_ms=self._offset(state)),)
        return (self.music_server.play(track, "REPLACE_ALL"),) if track is not None else ()

    @staticmethod
    def _offset(state: DeviceState) -> int:
        return state.player_offset_ms  # where AudioPlayer.PlaybackState says it stopped


@dataclass(frozen=True, slots=True)
class TurnRecord:
    text: str
    intent: str
    reply: str
    recognized_at: float  # monotonic, when the transcript was ready
    decode_cpu_s: float
    end_of_speech_at: float | None = None  # monotonic, when the server's endpointer ended the utterance


def wake_word_end(event: Mapping[str, Any]) -> int:
    """``endIndexInSamples`` of the Recognize's wakeWordIndices (0 if none or malformed)."""
    payload = (event.get("event") or {}).get("payload") or {}
    initiator = payload.get("initiator") if isinstance(payload, Mapping) else None
    inner = initiator.get("payload") if isinstance(initiator, Mapping) else None
    indices = inner.get("wakeWordIndices") if isinstance(inner, Mapping) else None
    end = indices.get("endIndexInSamples") if isinstance(indices, Mapping) else None
    return end if isinstance(end, int) and 0 < end < 16000 * 30 else 0


class _AssistantTurn:
    def __init__(self, brain: AssistantBrain, event: Mapping[str, Any]) -> None:
        self.brain = brain
        self.event = event
        asked = DeviceState.from_event(event).initiator is not None
        self.recognition = brain.recognizer.recognition(ANSWERS_GRAMMAR if asked else None)
        # As Amazon's cloud does, skip the wake word the device reports (it is not part of the command).
        self._skip_bytes = 2 * wake_word_end(event)
        self._task: asyncio.Task[Answer] | None = None
        self._end_of_speech_at: float | None = None

    def feed(self, pcm: bytes) -> None:
        if self._skip_bytes >= len(pcm):
            self._skip_bytes -= len(pcm)
            return
        pcm, self._skip_bytes = pcm[self._skip_bytes :], 0
        self.recognition.feed(pcm)

    def end_of_speech(self) -> None:
        if self._end_of_speech_at is None:
            self._end_of_speech_at = time.monotonic()
        self._start()

    def _start(self) -> asyncio.Task[Answer]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._compute(), name="assistant-turn")
        return self._task

    async def _compute(self) -> Answer:
        try:
            async with asyncio.timeout(self.brain.settings.answer_timeout_s):
                transcript = await self.recognition.finish()
        except TimeoutError:
            _log.warning("assistant: recognition took longer than %.1f s", self.brain.settings.answer_timeout_s)
            transcript = Transcript("")
        recognized_at = time.monotonic()
        reply, specs = await self.brain.respond(transcript.text, self.event)
        intent = self.brain.language.parse(transcript.text).name if transcript.text else ""
        self.brain.turns.append(
            TurnRecord(
                transcript.text, intent, reply.text, recognized_at, transcript.decode_s, self._end_of_speech_at
            )
        )
        del self.brain.turns[:-50]
        if reply.text:
            await self.brain.speech(reply.text)  # synthesise now; rendering the Speak then hits the cache
        return Answer(specs)

    async def answer(self) -> Answer:
        return await self._start()


def _sayable(names: list[str], locale: str) -> list[str]:
    """Music names whose every word the recogniser can pronounce (the others are left out of the grammar, with a
    log line: a title such as "Xanadu" cannot be asked for by voice, but plays as part of the folder)."""
    from avsd.assistant.grammar import normalize_name
    from avsd.speech.stt import known_words

    words = {w for n in names for w in normalize_name(n).split()}
    known = known_words(words, Language.load(locale).pronunciations)
    ok = [n for n in names if all(w in known for w in normalize_name(n).split())]
    if len(ok) < len(names):
        _log.info("music: %d names have words the recogniser cannot say; not in the grammar", len(names) - len(ok))
    return ok


def create_brain(settings: AssistantSettings) -> AssistantBrain | Any:
    """The brain ``[assistant]`` asks for: the skills, or a Rasa bot; Wyoming servers when their URLs are set.
    A bad ``[assistant]`` value raises ConfigError naming the key."""
    from avsd.assistant.grammar import GrammarError
    from avsd.errors import ConfigError

    for key in ("stt_url", "tts_url"):
        url = getattr(settings, key)
        if url and not url.startswith(("tcp://", "unix://")):
            raise ConfigError(f"assistant.{key}", f"{url!r} is not a Wyoming URL (tcp://host:port or unix:///path)")
    if settings.rasa_url and not settings.rasa_url.startswith(("http://", "https://")):
        raise ConfigError("assistant.rasa_url", f"{settings.rasa_url!r} is not an http(s) URL")
    try:
        return _create_brain(settings)
    except GrammarError as exc:
        raise ConfigError("assistant.locale", str(exc)) from exc


def _create_brain(settings: AssistantSettings) -> AssistantBrain | Any:
    tts: SpeechSynthesizer = EspeakTts(TtsSettings(settings.voice, settings.rate_wpm))
    recognizer: Recognizer | None = None
    if settings.tts_url:
        from avsd.speech.wyoming import WyomingTts

        tts = WyomingTts(settings.tts_url, fallback=EspeakTts(TtsSettings(settings.voice, settings.rate_wpm)))
    if settings.stt_url:
        from avsd.speech.wyoming import WyomingAsr

        recognizer = WyomingAsr(settings.stt_url, language=settings.locale.split("-")[0])
    if settings.rasa_url:
        from avsd.assistant.rasa import RasaBrain, RasaClient

        return RasaBrain(RasaClient(settings.rasa_url), recognizer=recognizer or PocketsphinxModel(), tts=tts)
    return AssistantBrain(settings, recognizer=recognizer, tts=tts)
