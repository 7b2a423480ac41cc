"""``avsd demo``: the whole pipeline, offline, against the emulator started in this process.

A shipped WAV ("Alexa, what time is it?", made with espeak-ng) goes through the real wake-word engine, the real
endpointer, an HTTP/2 + TLS upload to the emulator on loopback, and the reply comes back as MP3 and is written to
a WAV by the WAV-sink player. Every state transition is printed with its time and LED pattern.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from avsd.audio.wav_source import WavFileSource
from avsd.avs.client import ConnectionState
from avsd.avs.credentials import Credentials, save_credentials
from avsd.avs.messages import Directive, Event
from avsd.backends import Backend
from avsd.config import Config, load_config, override
from avsd.daemon import Daemon
from avsd.emulator.brains import Brain
from avsd.emulator.scenario import load_scenario
from avsd.emulator.server import Emulator
from avsd.hw.patterns import LedInputs, pattern_for
from avsd.root import build_daemon, select_engine
from avsd.state import Transition
from avsd.wake.report import ObservedEngine, describe

DEMO_WAV = Path(__file__).parent / "audio" / "assets" / "alexa-what-time-is-it.wav"
# `--backend assistant` says something the offline assistant acts on (made by tests/fixtures/speechgen.py).
ASSISTANT_WAV = Path(__file__).parent / "assistant" / "assets" / "alexa-set-a-timer-for-five-seconds.wav"
DEMO_RING_S = 2.0  # the demo "presses stop" this long after an alert starts sounding
DEMO_LINGER_S = 90.0  # at most this long waiting for the scenario's alerts after the input ended


class EventLog:
    """``--events-json``: one JSON object per event sent and directive received."""

    def __init__(self, stream: IO[str], started: float) -> None:
        self._stream = stream
        self._started = started

    def _write(self, direction: str, header: Any, payload: Any) -> None:
        record = {
            "time": round(time.monotonic() - self._started, 4),
            "direction": direction,
            "namespace": header.namespace,
            "name": header.name,
            "dialogRequestId": header.dialog_request_id,
            "payload": dict(payload),
        }
        self._stream.write(json.dumps(record) + "\n")
        self._stream.flush()

    def event(self, event: Event) -> None:
        self._write("event", event.header, event.payload)

    def directive(self, directive: Directive) -> None:
        self._write("directive", directive.header, directive.payload)


class TransitionPrinter:
    def __init__(self, started: float, daemon: Daemon) -> None:
        self._started = started
        self._daemon = daemon

    def __call__(self, transition: Transition) -> None:
        led = pattern_for(LedInputs(transition.state, connected=self._daemon.connected()))
        print(
            f"{time.monotonic() - self._started:7.2f} s  {transition.previous:>9} -> {transition.state:<9}"
            f" ({transition.trigger})  LED {led.name} {led.effect} rgb{led.color}",
            flush=True,
        )


def demo_config(base: Config, emulator: Emulator, state_dir: Path, out_dir: Path, engine: str | None) -> Config:
    config = override(base, "avs.endpoint", emulator.base_url)
    config = override(config, "avs.ca_file", str(emulator.ca_file))
    config = override(config, "daemon.state_dir", str(state_dir))
    config = dataclasses.replace(
        config,
        auth=dataclasses.replace(config.auth, token_url="", credentials_file=""),
        playback=dataclasses.replace(config.playback, backend="wav", wav_dir=str(out_dir)),
    )
    if engine:
        config = override(config, "wake.engine", engine)
    return config


def demo_brain(backend: str, config: Config) -> Brain | None:
    """The local server's brain for ``--backend``: None = the scenario brain (emulator)."""
    if backend == Backend.ASSISTANT:
        from avsd.assistant.brain import create_brain

        brain: Brain = create_brain(config.assistant)
        return brain
    return None


def print_caption(started: float) -> Callable[[Directive], None]:
    """Show what the assistant says (the Speak caption, as Amazon sends it)."""

    def show(directive: Directive) -> None:
        if directive.header.name == "Speak" and isinstance(directive.payload.get("caption"), dict):
            text = str(directive.payload["caption"].get("content", "")).rsplit("\n", 1)[-1]
            print(f"{time.monotonic() - started:7.2f} s  Alexa says: {text!r}", flush=True)
        elif directive.header.namespace in ("Alerts", "Speaker", "AudioPlayer"):
            print(f"{time.monotonic() - started:7.2f} s  directive {directive.header.namespace}."
                  f"{directive.header.name} {json.dumps(dict(directive.payload))}", flush=True)

    return show


async def run_demo(args: argparse.Namespace) -> int:
    backend = str(getattr(args, "backend", Backend.EMULATOR))
    if backend == Backend.AVS:
        print("avsd demo: --backend avs needs a linked device; use `avsd run` after `avsd login`", file=sys.stderr)
        return 2
    input_wav: Path = args.input or (ASSISTANT_WAV if backend == Backend.ASSISTANT else DEMO_WAV)
    if not input_wav.exists():  # noqa: ASYNC240 - start-up checks, before the loop has anything else to do
        print(f"avsd demo: no such WAV: {input_wav}", file=sys.stderr)
        return 2
    out_dir: Path = args.out or Path(tempfile.mkdtemp(prefix="avsd-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    base = load_config(args.config) if args.config else Config()
    scenario = load_scenario(args.scenario) if args.scenario else None
    events_file = args.events_json.open("w", encoding="utf-8") if args.events_json else None
    started = time.monotonic()
    try:
        brain = demo_brain(backend, base)
        async with Emulator(cert_dir=out_dir / "emulator", scenario=scenario, brain=brain) as emulator:
            state_dir = out_dir / "state"
            save_credentials(state_dir / "credentials.json", Credentials("avsd-demo", emulator.refresh_token))
            config = demo_config(base, emulator, state_dir, out_dir, args.engine)
            engine = ObservedEngine(select_engine(config.wake), lambda detection: print(
                f"{time.monotonic() - started:7.2f} s  {describe(detection)} of the input", flush=True))
            daemon = build_daemon(
                config, open_audio=lambda: WavFileSource(input_wav, realtime=not args.fast, pad_silence_s=3.0),
                engine=engine,
            )
            print(f"avsd demo: emulator at {emulator.base_url}; wake word engine {daemon.dialog.engine.name}; "
                  f"input {input_wav}", flush=True)

            def on_connection(state: ConnectionState) -> None:
                print(f"{time.monotonic() - started:7.2f} s  connection {state}", flush=True)

            daemon.dialog.machine.add_observer(TransitionPrinter(started, daemon), name="demo printer")
            daemon.client.add_state_observer(on_connection)
            daemon.client.directive_observers.add(print_caption(started), name="demo captions")
            if events_file is not None:
                log = EventLog(events_file, started)
                daemon.client.event_observers.add(log.event, name="EventLog.event")
                daemon.client.directive_observers.add(log.directive, name="EventLog.directive")

            def on_ring(token: str) -> None:
                print(f"{time.monotonic() - started:7.2f} s  alert {token} sounding; "
                      f"the demo stops it in {DEMO_RING_S:.0f} s", flush=True)

            async def linger() -> None:
                # A scenario that set a timer: let it ring, stop it, and deliver its events (maybe after an outage).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DEMO_LINGER_S):
                        await daemon.alerts.ring_out(stop_after_s=DEMO_RING_S, on_ring=on_ring)
                        await daemon.outbox.drained()

            await daemon.run(stop_when_audio_ends=True, wait_for_connection_s=15.0, linger=linger)
            replies = sorted(p for p in out_dir.glob("*.wav") if not p.name.startswith("alert-"))  # noqa: ASYNC240
            names = [r.qualified_name or "" for r in emulator.records]
            alert_events = [name for name in names if name.startswith("Alerts.")]
            recognizes = [r for r in emulator.records if r.qualified_name == "SpeechRecognizer.Recognize"]
    finally:
        if events_file is not None:
            events_file.close()
    if not recognizes:
        print("avsd demo: the wake word was not heard; nothing was sent", file=sys.stderr)
        return 1
    if not replies:
        print("avsd demo: no reply was played", file=sys.stderr)
        return 1
    print(f"avsd demo: sent {len(recognizes)} Recognize ({sum(len(r.audio) for r in recognizes)} audio bytes); "
          f"Alexa's reply: {', '.join(str(p) for p in replies)}", flush=True)
    if alert_events:
        print(f"avsd demo: alert events AVS received: {', '.join(alert_events)}", flush=True)
    if args.events_json:
        print(f"avsd demo: events and directives in {args.events_json}", flush=True)
    return 0
