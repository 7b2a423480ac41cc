"""VLC through its own output (afile) and the pcm backend through real ALSA (the `file` plugin) via PortAudio."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from avsd.avs.attachments import Attachment
from avsd.playback.base import Media, PlaybackOutcome, PlaybackSettings
from avsd.playback.vlcplayer import VlcPlayer
from tests.playback.conftest import Speech, feed, raw_rms, wav_stats


async def test_vlc_native_afile_output_holds_the_speech(tmp_path: Path, speech: Speech) -> None:
    out = tmp_path / "afile.wav"
    options = ("--aout=afile", f"--audiofile-file={out}", "--audiofile-format=s16", "--audiofile-wav")
    player = VlcPlayer(PlaybackSettings(vlc_options=options))
    assert player.native_output
    attachment = Attachment("speak")
    try:
        async with asyncio.timeout(20):
            playback = player.play(Media.stream(attachment))
            last = asyncio.create_task(feed(attachment, speech.data, chunk=1000, delay=0.02))
            await playback.started()
            assert await playback.finished() is PlaybackOutcome.FINISHED
            last_chunk = await last
    finally:
        await player.close()
    assert playback.first_audio_time is not None and playback.first_audio_time < last_chunk
    duration, rms = wav_stats(out)
    assert abs(duration - speech.duration_s) < 0.2
    assert rms > 300


PCM_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from avsd.playback.base import Media, PlaybackOutcome
    from avsd.playback.decode import PcmFormat
    from avsd.playback.pcm import PcmPlayer

    async def main() -> int:
        player = PcmPlayer(fmt=PcmFormat(24000, 1))
        async with asyncio.timeout(30):
            playback = player.play(Media.file(sys.argv[1]))
            outcome = await playback.finished()
            await player.close()
        print(outcome.value, playback.offset_ms, playback.error)
        return 0 if outcome is PlaybackOutcome.FINISHED else 1

    sys.exit(asyncio.run(main()))
    """
)


def test_pcm_backend_plays_through_alsa_file_plugin(tmp_path: Path, speech: Speech) -> None:
    # ALSA reads its configuration once per process, so the player runs in a child with its own HOME.
    raw = tmp_path / "out.raw"
    (tmp_path / ".asoundrc").write_text(
        f'pcm.!default {{ type file; slave.pcm "null"; file "{raw}"; format "raw" }}\n'
    )
    env = dict(os.environ, HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", PCM_SCRIPT, str(speech.mp3)], env=env, capture_output=True, text=True, timeout=45
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert result.stdout.startswith("finished")
    data = raw.read_bytes()
    # The null slave takes whatever PortAudio negotiated; 24 kHz mono S16 asked, so ~2 bytes per frame.
    seconds = len(data) / (24000 * 2)
    assert seconds >= speech.duration_s * 0.9
    assert raw_rms(data) > 300
