"""``avsd doctor``'s assistant check: the grammar and recogniser load, espeak-ng speaks, and the recogniser
understands what espeak-ng said; the music folder is scanned. Blocking (the doctor runs it in a thread)."""

from __future__ import annotations

from avsd.assistant.settings import AssistantSettings


def self_test(settings: AssistantSettings) -> tuple[bool, str, str]:
    """(ok, detail, remedy)."""
    try:
        from avsd.assistant.brain import create_brain
        from avsd.speech import convert
        from avsd.speech.stt import PocketsphinxModel, SttUnavailableError, VocabularyError
        from avsd.speech.tts import TtsUnavailableError, espeak_pcm
    except ImportError as exc:
        return False, f"missing Python package: {exc.name}", "pip install 'avsd[assistant]'"
    try:
        brain = create_brain(settings)
    except SttUnavailableError as exc:
        return False, str(exc), "pip install 'avsd[assistant]'"
    except (VocabularyError, ValueError) as exc:
        return False, str(exc), "fix [assistant] in the config (locale, music_dir) or the locale file"
    parts = []
    recognizer = getattr(brain, "recognizer", None)
    try:
        said = convert.resample(espeak_pcm("what time is it", voice="en-us", rate_wpm=150), 16000)
    except TtsUnavailableError as exc:
        return False, str(exc), "apt-get install espeak-ng"
    if isinstance(recognizer, PocketsphinxModel):
        heard = recognizer.transcribe(bytes(8000) + said.data + bytes(16000)).text
        if heard != "what time is it":
            return False, f"pocketsphinx heard {heard!r} for 'what time is it'", "report this with --debug"
        parts.append("pocketsphinx grammar loaded and understood espeak-ng")
    else:
        parts.append(f"speech-to-text: {type(recognizer).__name__} ({settings.stt_url or settings.rasa_url})")
    music = getattr(brain, "music", None)
    if music is not None:
        parts.append(f"music: {len(music.tracks)} tracks ({len(music.skipped)} unplayable skipped)")
    if settings.rasa_url:
        parts.append(f"answers from the Rasa bot at {settings.rasa_url}")
    return True, "; ".join(parts), ""
