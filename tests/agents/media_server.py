"""Test media: tone MP3s and a tiny local HTTP server (127.0.0.1, threads) that serves them, playlists, 404s and
"gated" streams that stop at a byte offset until the test opens the gate (so music lasts exactly as long as a test
needs, however fast the WAV sink decodes)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from avsd.speech.tts import encode_mp3

RATE = 48000
# A high bitrate on purpose: miniaudio's MP3 reader pulls 16 KiB before it decodes anything, so with 320 kbit/s a
# gated stream lags the gate by 0.4 s of audio instead of 2 s at 64 kbit/s.
MP3_KBPS = 320
BYTES_PER_S = MP3_KBPS * 1000 // 8
AMPLITUDE = 0.5


def tone_mp3(seconds: float, freq: float = 440.0) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    pcm = (AMPLITUDE * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()
    return encode_mp3(pcm, RATE, 1, MP3_KBPS)


def wav_samples(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        return wav.getframerate(), np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)


def rms(samples: np.ndarray, rate: int, start_s: float, end_s: float) -> float:
    window = samples[int(start_s * rate) : int(end_s * rate)]
    assert len(window) > 0, "window outside the recording"
    return float(np.sqrt(np.mean(window**2)))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Route:
    body: bytes
    content_type: str = "audio/mpeg"
    status: int = 200
    gates: list[tuple[int, threading.Event]] = field(default_factory=list)  # (byte offset, opened when set)
    rate: int = 0  # bytes per second (0: as fast as possible), like a live radio stream
    hits: int = 0


class MediaServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                route = routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                route.hits += 1
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                sent = 0
                with contextlib.suppress(OSError):
                    for offset, gate in [*sorted(route.gates, key=lambda g: g[0]), (len(route.body), None)]:
                        step = max(1, route.rate // 20) if route.rate else offset - sent
                        while sent < offset:
                            self.wfile.write(route.body[sent : min(offset, sent + step)])
                            self.wfile.flush()
                            sent = min(offset, sent + step)
                            if route.rate:
                                time.sleep(0.05)
                        if gate is not None:
                            gate.wait(30)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="media-server", daemon=True)

    def add(self, path: str, body: bytes, content_type: str = "audio/mpeg", **kwargs: object) -> str:
        self.routes[path] = Route(body, content_type, **kwargs)  # type: ignore[arg-type]
        return self.base + path

    def gate(self, path: str, at_byte: int) -> threading.Event:
        event = threading.Event()
        self.routes[path].gates.append((at_byte, event))
        return event

    def open_all(self) -> None:
        for route in self.routes.values():
            for _, gate in route.gates:
                gate.set()

    @contextlib.contextmanager
    def running(self) -> Iterator[MediaServer]:
        self._thread.start()
        try:
            yield self
        finally:
            self.open_all()
            self._server.shutdown()
            self._server.server_close()


def play_payload(
    token: str,
    url: str,
    *,
    behavior: str = "REPLACE_ALL",
    offset_ms: int = 0,
    expected_previous: str | None = None,
    delay_ms: int | None = None,
    interval_ms: int | None = None,
) -> dict[str, object]:
    stream: dict[str, object] = {"url": url, "token": token, "offsetInMilliseconds": offset_ms}
    if url.startswith("cid:"):
        stream["streamFormat"] = "AUDIO_MPEG"
    if expected_previous is not None:
        stream["expectedPreviousToken"] = expected_previous
    if delay_ms is not None or interval_ms is not None:
        stream["progressReport"] = {
            "progressReportDelayInMilliseconds": delay_ms or 0,
            "progressReportIntervalInMilliseconds": interval_ms or 0,
        }
    return {"playBehavior": behavior, "audioItem": {"audioItemId": f"id-{token}", "stream": stream}}
