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
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from avsd.agents.audio_queue import PlayerActivity
from avsd.audio.source import AudioSource
from avsd.audio.wav_source import WavFileSource
from avsd.avs.client import ConnectionState
from avsd.avs.credentials import load_credentials
from avsd.avs.messages import Directive, Event
from avsd.backends import Backend, BackendSession, open_backend, session_config
from avsd.config import Config, load_config, override
from avsd.daemon import Daemon
from avsd.demo_say import SayDriver
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


def demo_config(
    base: Config, session: BackendSession, state_dir: Path, out_dir: Path, engine: str | None, *, fast: bool
) -> Config:
    """The device side of the demo: the backend's endpoint (an emulator's state in ``state_dir``), replies into WAV
    files played in real time (unless ``fast``), cards on."""
    config = session_config(base, session, state_dir)
    if session.emulator is not None:
        config = override(config, "daemon.state_dir", str(state_dir))
    config = dataclasses.replace(
        config,
        playback=dataclasses.replace(config.playback, backend="wav", wav_dir=str(out_dir), wav_realtime=not fast),
    )
    # Headless: the demo has no screen either, but prints the cards (and --events-json keeps them).
    config = override(config, "template_runtime.enabled", True)
    if engine:
        config = override(config, "wake.engine", engine)
    return config


async def content_played_out(daemon: Daemon) -> None:
    """Return once the AudioPlayer has nothing playing (a scenario's music plays to its end; bound by the caller)."""
    # A demo helper like Daemon.settle: a short poll instead of an event per player state.
    while daemon.audio_player.busy and daemon.audio_player.activity is not PlayerActivity.PAUSED:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


def demo_input(
    args: argparse.Namespace, daemon: Callable[[], Daemon]
) -> tuple[Callable[[], AudioSource], str, SayDriver | None]:
    """(audio factory, description, the --say driver or None): the shipped WAV, ``--input`` or ``--say``."""
    if args.say:
        driver = SayDriver(
            args.say,
            tap=args.tap,
            realtime=not args.fast,
            press_tap=lambda: daemon().dialog.tap(),
            dialog_state=lambda: daemon().dialog.state,
        )
        return driver.open_audio, f"--say x{len(args.say)}{' (tap)' if args.tap else ''}", driver
    input_wav: Path = args.input or (ASSISTANT_WAV if args.backend is Backend.ASSISTANT else DEMO_WAV)
    return (lambda: WavFileSource(input_wav, realtime=not args.fast, pad_silence_s=3.0)), str(input_wav), None


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
    if args.say and args.input:
        print("avsd demo: use --input WAV or --say TEXT, not both", file=sys.stderr)
        return 2
    if args.say and shutil.which("espeak-ng") is None:
        print("avsd demo: --say needs espeak-ng (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    if args.input is not None and not args.input.exists():
        print(f"avsd demo: no such WAV: {args.input}", file=sys.stderr)
        return 2
    out_dir: Path = args.out or Path(tempfile.mkdtemp(prefix="avsd-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    base = load_config(args.config) if args.config else Config()
    events_file = args.events_json.open("w", encoding="utf-8") if args.events_json else None
    started = time.monotonic()
    sent: list[Event] = []
    try:
        async with open_backend(
            args.backend, scenario_path=args.scenario, cert_dir=out_dir / "emulator", config=base, kept_records=None
        ) as session:
            state_dir = out_dir / "state"
            state_dir.mkdir(parents=True, exist_ok=True)
            config = demo_config(base, session, state_dir, out_dir, args.engine, fast=args.fast)
            if session.emulator is None:
                load_credentials(config.credentials_path)  # not linked: one line and exit 78, before anything starts
            daemon_ref: list[Daemon] = []
            open_audio, described, say = demo_input(args, lambda: daemon_ref[0])
            engine = ObservedEngine(select_engine(config.wake), lambda detection: print(
                f"{time.monotonic() - started:7.2f} s  {describe(detection)} of the input", flush=True))
            daemon = build_daemon(config, open_audio=open_audio, engine=engine)
            daemon_ref.append(daemon)
            print(f"avsd demo: {session.describe()}; wake word engine {daemon.dialog.engine.name}; input {described}",
                  flush=True)

            def on_connection(state: ConnectionState) -> None:
                print(f"{time.monotonic() - started:7.2f} s  connection {state}", flush=True)

            daemon.dialog.machine.add_observer(TransitionPrinter(started, daemon), name="demo printer")
            if say is not None:
                daemon.dialog.machine.add_observer(say.on_transition, name="demo --say")
            daemon.client.add_state_observer(on_connection)
            daemon.client.directive_observers.add(print_caption(started), name="demo captions")
            if daemon.templates is not None:
                daemon.templates.observers.add(
                    lambda card: print(f"{time.monotonic() - started:7.2f} s  card {card.describe()}", flush=True),
                    name="demo card printer",
                )
            daemon.client.event_observers.add(sent.append, name="demo sent events")
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
                        await content_played_out(daemon)
                        await daemon.outbox.drained()

            if say is not None:
                await say.prepare()
            await daemon.run(stop_when_audio_ends=True, wait_for_connection_s=15.0, linger=linger)
            replies = sorted(p for p in out_dir.glob("*.wav") if not p.name.startswith("alert-"))  # noqa: ASYNC240
            if session.emulator is not None:  # what the server received (an offline attempt is not counted)
                names = [r.qualified_name or "" for r in session.emulator.records]
                audio = sum(len(r.audio) for r in session.emulator.records if r.qualified_name == _RECOGNIZE)
            else:
                names, audio = [f"{e.header.namespace}.{e.header.name}" for e in sent], None
    finally:
        if events_file is not None:
            events_file.close()
    return report(names, audio, replies, args)


_RECOGNIZE = "SpeechRecognizer.Recognize"


def report(names: Sequence[str], audio: int | None, replies: Sequence[Path], args: argparse.Namespace) -> int:
    """The demo's last lines (and its exit code) from the events AVS received."""
    recognizes = names.count(_RECOGNIZE)
    alert_events = [name for name in names if name.startswith("Alerts.")]
    if not recognizes:
        print("avsd demo: the wake word was not heard; nothing was sent", file=sys.stderr)
        return 1
    if not replies:
        print("avsd demo: no reply was played", file=sys.stderr)
        return 1
    bytes_note = f" ({audio} audio bytes)" if audio is not None else ""
    print(f"avsd demo: sent {recognizes} Recognize{bytes_note}; Alexa's reply: {', '.join(str(p) for p in replies)}",
          flush=True)
    if alert_events:
        print(f"avsd demo: alert events AVS received: {', '.join(alert_events)}", flush=True)
    if args.events_json:
        print(f"avsd demo: events and directives in {args.events_json}", flush=True)
    return 0
