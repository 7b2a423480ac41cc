"""MicrophoneSource and list_devices through real PortAudio + ALSA, with ALSA's ``file`` plugin as the device.

ALSA reads its configuration once per process, so each case runs in a subprocess whose HOME holds an
``.asoundrc`` whose default PCM reads raw 16 kHz S16_LE mono from a file (``infile``) and discards playback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures"
pytest.importorskip("pyaudio", reason="PyAudio/PortAudio not installed")

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from avsd.audio.mic import MicrophoneSource, list_devices
    from avsd.wake.base import WakeSettings
    from avsd.root import select_engine
    async def main() -> None:
        want = int(sys.argv[1])
        mic = MicrophoneSource(None, queue_frames=4000)
        engine = select_engine(WakeSettings(engine="micro"))
        frames, detections, index = [], [], 0
        async with asyncio.timeout(20):
            async for block in mic.frames():  # blocks of whole 10 ms frames
                assert len(block) % 320 == 0
                frames.append(block)
                index += len(block) // 2
                det = engine.process(block, index)
                if det:
                    detections.append([det.start_index, det.end_index])
                if index // 160 >= want:
                    break
        await mic.close()
        devices = [d.name for d in list_devices()]
        sys.stdout.buffer.write(b"".join(frames))
        result = {"det": detections, "devices": devices, "dropped": mic.dropped}
        sys.stderr.write("RESULT" + json.dumps(result))

    asyncio.run(main())
    """
)


def run_child(tmp_path: Path, pcm: bytes, frames: int) -> tuple[bytes, dict[str, object]]:
    raw = tmp_path / "in.raw"
    raw.write_bytes(pcm)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(
        textwrap.dedent(
            f"""
            pcm.!default {{
                type file
                slave.pcm "null"
                file "/dev/null"
                infile "{raw}"
                format "raw"
            }}
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(frames)],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=40,
        check=False,
    )
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, err[-2000:]
    return proc.stdout, json.loads(err.rsplit("RESULT", 1)[1])


def test_microphone_delivers_wav_audio_and_wake_word(tmp_path: Path) -> None:
    meta = json.loads((FIXTURES / "speech.json").read_text())["alexa-what-time-is-it"]
    pcm = (FIXTURES / "alexa-what-time-is-it.wav").read_bytes()[44:]
    frames = len(pcm) // 320
    got, result = run_child(tmp_path, pcm, frames)
    assert result["dropped"] == 0
    # Bit-exact through PortAudio + ALSA (the last whole block may add a tail).
    assert got[: frames * 320] == pcm[: frames * 320]
    (start, end), *_ = result["det"]
    assert abs(start - meta["alexa_start"]) <= 320
    assert meta["alexa_end"] <= end
    assert "default" in result["devices"]


def test_missing_device_lists_devices() -> None:
    from avsd.audio.mic import AudioDeviceInfo, resolve_device
    from avsd.errors import AudioDeviceError

    devices = [
        AudioDeviceInfo(0, "USB PnP Sound Device", 1, 0, 48000.0),
        AudioDeviceInfo(1, "HDMI", 0, 2, 48000.0),
    ]
    assert resolve_device(devices, "usb pnp") == devices[0]
    assert resolve_device(devices, 0) == devices[0]
    assert resolve_device(devices, None) is None
    with pytest.raises(
        AudioDeviceError, match=r"no input device matching 'respeaker'.*0: USB PnP Sound Device"
    ):
        resolve_device(devices, "respeaker")
    with pytest.raises(AudioDeviceError, match="no input device with index 1"):
        resolve_device(devices, 1)  # HDMI is output-only
