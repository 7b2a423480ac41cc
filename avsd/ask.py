"""``avsd ask``: files or text in, Alexa's replies out, many at once over ONE HTTP/2 connection.

    avsd ask question.wav --say "what time is it" --out replies --concurrency 4 --backend emulator

For each input: the reply's speech saved as received (``NN-name.mp3``) and decoded (``NN-name.wav``), and one
line naming its directives (``--json``: one JSON object per line). Exit 0 when every input got an answer, 1
otherwise, 2 usage, 78 configuration (bad config file, no credentials, login refused).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avsd.avs.client import ConnectionSettings
from avsd.avs.credentials import Credentials
from avsd.backends import Backend, add_backend_argument
from avsd.errors import AuthError, AvsdError
from avsd.root import build_headless_session
from avsd.session import HeadlessSession, Reply

MAX_CONCURRENCY = 10  # AVS allows 10 streams per connection; the client keeps 2 of them for downchannel + ping
BACKENDS = ("avs", "emulator", "assistant")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE", help="WAV files (any rate; converted)")
    parser.add_argument("--say", action="append", default=[], metavar="TEXT", help="ask TEXT (spoken by espeak-ng)")
    parser.add_argument("--out", type=Path, default=Path("."), help="directory for the replies (default: .)")
    parser.add_argument("--concurrency", type=int, default=4, help=f"asks in flight at once, 1-{MAX_CONCURRENCY}")
    parser.add_argument("--json", action="store_true", help="one JSON object per input instead of a text line")
    add_backend_argument(parser, default=Backend.AVS)  # the one --backend/--scenario definition (avsd/backends.py)
    parser.add_argument("--config", type=Path, default=None, help="TOML config for --backend avs")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer")


@dataclass(frozen=True, slots=True)
class Input:
    index: int
    label: str  # the file name or the text
    stem: str


def usage_problem(args: argparse.Namespace) -> str | None:
    if not args.files and not args.say:
        return "nothing to ask: give WAV files and/or --say TEXT"
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        return f"--concurrency must be 1-{MAX_CONCURRENCY} (AVS allows {MAX_CONCURRENCY} streams per connection)"
    if args.scenario is not None and args.backend != "emulator":
        return "--scenario needs --backend emulator"
    missing = [str(f) for f in args.files if not f.is_file()]
    return f"no such file: {', '.join(missing)}" if missing else None


@contextlib.asynccontextmanager
async def backend_session(args: argparse.Namespace) -> AsyncIterator[HeadlessSession]:
    """``--backend`` (avsd/backends.py) turned into one headless session."""
    if args.backend in (Backend.EMULATOR, Backend.ASSISTANT):
        from avsd.backends import open_backend
        from avsd.config import load_config

        config = load_config(args.config) if args.config else None
        async with open_backend(Backend(args.backend), scenario_path=args.scenario, config=config) as backend:
            assert backend.refresh_token is not None  # a local server always has one
            settings = ConnectionSettings(endpoint=backend.endpoint, ca_file=backend.ca_file,
                                          event_timeout_s=args.timeout)
            session = build_headless_session(
                settings,
                credentials=Credentials("avsd-ask", backend.refresh_token),
                token_url=backend.endpoint + "/auth/o2/token",
                ask_timeout_s=args.timeout,
            )
            try:
                yield session
            finally:
                await session.close()
        return
    from avsd.config import load_config, override

    config = override(load_config(args.config), "avs.event_timeout_s", args.timeout)
    session = build_headless_session(
        config.avs, credentials_path=config.credentials_path, token_url=config.token_url(), ask_timeout_s=args.timeout
    )
    try:
        yield session
    finally:
        await session.close()


def _stem(index: int, text: str) -> str:
    return f"{index:02d}-" + (re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40] or "input")


def _inputs(args: argparse.Namespace) -> list[Input]:
    items = [Input(i + 1, str(f), _stem(i + 1, f.stem)) for i, f in enumerate(args.files)]
    start = len(items) + 1
    items += [Input(start + i, text, _stem(start + i, text)) for i, text in enumerate(args.say)]
    return items


async def _load(args: argparse.Namespace, item: Input) -> bytes:
    from avsd.audio.wav_source import load_wav
    from avsd.session_audio import text_to_pcm

    if item.index <= len(args.files):
        return await asyncio.to_thread(load_wav, Path(item.label))
    return await asyncio.to_thread(text_to_pcm, item.label)


def mp3_to_wav(mp3: bytes, path: Path) -> None:
    """Decode a reply's MP3 (miniaudio) into a 16-bit WAV at the MP3's own rate and channel count."""
    import miniaudio

    try:
        info = miniaudio.mp3_get_info(mp3)
        decoded = miniaudio.decode(mp3, nchannels=info.nchannels, sample_rate=info.sample_rate)
    except miniaudio.DecodeError as exc:
        raise AvsdError(f"the reply's MP3 does not decode: {exc}") from exc
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(decoded.nchannels)
        wav.setsampwidth(2)
        wav.setframerate(decoded.sample_rate)
        wav.writeframes(decoded.samples.tobytes())


async def _save(out: Path, item: Input, reply: Reply) -> dict[str, str]:
    speech = reply.speech
    if not speech:
        return {}
    mp3, wav = out / f"{item.stem}.mp3", out / f"{item.stem}.wav"
    await asyncio.to_thread(mp3.write_bytes, speech)
    await asyncio.to_thread(mp3_to_wav, speech, wav)
    return {"mp3": str(mp3), "wav": str(wav)}


def _line(item: Input, reply: Reply | None, files: dict[str, str], error: str, as_json: bool) -> str:
    if as_json:
        doc: dict[str, Any] = {"index": item.index, "input": item.label, "ok": reply is not None}
        if reply is not None:
            doc |= {
                "status": reply.status,
                "dialogRequestId": reply.dialog_request_id,
                "directives": [d.qualified_name for d in reply.directives],
                "expectsSpeech": reply.expects_speech,
                "caption": reply.caption,
                "streamUrl": reply.stream_url,
                "firstAudioMs": None if reply.first_audio_s is None else round(reply.first_audio_s * 1000, 1),
                **files,
            }
        else:
            doc["error"] = error
        return json.dumps(doc)
    if reply is None:
        return f"{item.label}: FAILED {error}"
    where = f" -> {files['mp3']}, {files['wav']}" if files else ""
    return f"{item.label}: {reply.summary()}{where}"


async def run_ask(args: argparse.Namespace) -> int:
    problem = usage_problem(args)
    if problem is not None:
        print(f"avsd ask: {problem}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    items = _inputs(args)
    gate = asyncio.Semaphore(args.concurrency)
    try:
        async with backend_session(args) as session:
            await session.connect()

            async def one(item: Input) -> tuple[Reply | None, dict[str, str], str]:
                try:
                    pcm = await _load(args, item)
                    async with gate:
                        reply = await session.ask(pcm)
                    return reply, await _save(args.out, item, reply), ""
                except AvsdError as exc:
                    return None, {}, str(exc)

            tasks = [asyncio.create_task(one(item)) for item in items]
            failures = 0
            for item, task in zip(items, tasks, strict=True):
                reply, files, error = await task  # printed in input order, each as soon as it is there
                failures += reply is None
                print(_line(item, reply, files, error, args.json), flush=True)
    except AuthError as exc:
        print(f"avsd ask: login refused ({exc}); run `avsd login`", file=sys.stderr)
        return 78
    return 1 if failures else 0
