"""Speech in and out, shared by every front-end and back-end.

- :mod:`avsd.speech.tts`: text -> speech (espeak-ng, MP3 through lameenc for Speak directives);
- :mod:`avsd.speech.stt`: speech -> text (pocketsphinx with its en-US model from the PyPI wheel; a JSGF grammar
  or the full language model with phrase hints), decoding while the audio arrives;
- :mod:`avsd.speech.convert`: the one place for audio conversion (resample, MP3 decode, WAV, mu-law);
- :mod:`avsd.speech.wyoming`: clients for Wyoming ASR and TTS servers (faster-whisper, Piper), chosen by one URL.
"""
