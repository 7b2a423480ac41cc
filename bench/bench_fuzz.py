"""Fuzzing the parsers that read bytes from the network or from files: a seeded mutator, no new dependency.

Targets (each input is a valid seed mutated 1-8 times: bit flips, random bytes, cut/duplicated ranges, protocol
tokens spliced in, truncation, deep nesting):

- ``multipart``: whole response bodies (JSON + binary parts) fed to :class:`DirectiveStreamReader` in random
  splits, with an :class:`AttachmentStore` capped small; the Content-Type parser;
- ``directive``: JSON parts through :func:`parse_directive`, into a :class:`DirectiveSequencer`'s intake
  (``submit``: dialogRequestId rules, routing, bounded queues), then the payload parsers of the agents that read
  them (SetAlert, AudioPlayer.Play, ClearQueue);
- ``config`` / ``credentials``: TOML and JSON files through :func:`parse_toml_text` + :func:`parse_config` and
  :func:`parse_credentials`.

Allowed outcomes: success, or an exception in avsd's error tree (``AvsdError``). Anything else (``KeyError``,
``TypeError``, ``RecursionError``, ...) is a finding. Metrics: inputs per target, findings (must be 0), the
slowest input (must be under 1 s) and total time. An input's time is the CPU time of this thread
(``time.thread_time``): on a shared, loaded machine wall time also counts the time other processes ran (one run
saw a 2.4 s wall-clock "input" inside a run that used 1.1 s of CPU in total).
"""

from __future__ import annotations

import copy
import json
import logging
import random
import sys
import time
import tomllib
import traceback
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from avsd.agents.alert_schedule import alert_from_directive
from avsd.agents.audio_queue import parse_clear_behavior, parse_play
from avsd.agents.sequencer import DirectiveSequencer, SequencerSettings
from avsd.avs.attachments import AttachmentSettings, AttachmentStore
from avsd.avs.credentials import parse_credentials
from avsd.avs.messages import Directive, Event, parse_directive
from avsd.avs.multipart import boundary_from_content_type, encode_parts
from avsd.avs.response import DirectiveStreamReader
from avsd.config import defaults_toml, parse_config, parse_toml_text, toml_value
from avsd.errors import AvsdError

BOUNDARY = "fuzz-b0undary"
TOKENS = [
    b"\r\n", b"\n", b"--", b"--" + BOUNDARY.encode(), b"\r\n--" + BOUNDARY.encode() + b"--", b"\r\n\r\n",
    b"Content-Type: application/json", b"Content-ID: <x>", b"Content-Type: application/octet-stream",
    b'"', b"\\", b"{", b"}", b"[", b"]", b":", b",", b"=", b"null", b"true", b"nan", b"inf", b"-inf", b"-1",
    b"1e999", b"99999999999999999999999", b"\x00", b"\xff\xfe", b"\xc3(", b"'''", b'"""', b"[[", b"{{",
    b'"header"', b'"payload"', b'"directive"', b'"token"', b'"scheduledTime"', b'"url"', b'"audioItem"',
    b"backoff_s", b"[avs]", b"[dialog.timeouts]", b"= []", b"= -1.0", b"= nan", b"\t", b" " * 64,
]


def mutate(seed: bytes, rng: random.Random) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(9)
        n = len(data)
        at = rng.randint(0, n)
        if op == 0 and n:  # flip bits
            i = rng.randrange(n)
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # random bytes
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op == 2 and n:  # delete a range
            end = min(n, at + rng.randint(1, 64))
            del data[at:end]
        elif op == 3 and n:  # duplicate a range
            start = rng.randrange(n)
            chunk = data[start : start + rng.randint(1, 256)]
            data[at:at] = chunk * rng.randint(1, 4)
        elif op == 4:  # a protocol token
            data[at:at] = rng.choice(TOKENS)
        elif op == 5 and n:  # truncate
            del data[rng.randrange(n) :]
        elif op == 6:  # deep nesting
            depth = rng.choice((50, 500, 3000))
            opener, closer = rng.choice(((b"[", b"]"), (b"{", b"}"), (b'{"a":', b"}")))
            data[at:at] = opener * depth + closer * rng.choice((0, depth))
        elif op == 7 and n:  # replace a byte with a delimiter-ish one
            data[rng.randrange(n)] = rng.choice(b"\r\n-:;={}[]\"' \x00")
        else:  # splice two places
            if n > 2:
                a, b = sorted(rng.sample(range(n), 2))
                data = data[:a] + data[b:] + data[a:b]
    return bytes(data)


WEIRD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**63, -(2**63), 10**30, 0.0, -0.0, -1.5, 1e308, float("nan"), float("inf"),
    float("-inf"), "", "x", "cid:", "none", "\x00", "9999-99-99T99:99:99+0000", "2026-02-30T25:00:00Z",
    "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", [], [1],
    [[[]]], {}, {"a": 1}, "a" * 5000,
]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


def mutate_structure(doc: Any, rng: random.Random) -> Any:
    """Replace 1-3 values anywhere in a parsed document with values of a wrong type, range or shape."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(doc)
        if not paths:
            return doc
        path = rng.choice(paths)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if rng.random() < 0.15 and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(WEIRD_VALUES))
    return doc


def _toml(doc: dict[str, Any]) -> bytes:
    """A (mutated) config table back into TOML; values TOML cannot say (None) become strings."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(str(k))} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, float) and v != v:
            return "nan"
        if isinstance(v, float) and v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return toml_value("None" if v is None else v)

    lines: list[str] = []
    for section, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(str(section))}]")
            lines += [f"{json.dumps(str(k))} = {value(v)}" for k, v in table.items()]
        else:
            lines.insert(0, f"{json.dumps(str(section))} = {value(table)}")
    return "\n".join(lines).encode()


# ----- seeds ----------------------------------------------------------------------------------------------------


def _directive(namespace: str, name: str, payload: dict[str, Any], dialog: str | None = "d1") -> bytes:
    return Directive.new(namespace, name, payload, dialog_request_id=dialog).to_json()


DIRECTIVE_SEEDS = [
    _directive("SpeechSynthesizer", "Speak", {"token": "t1", "url": "cid:speak-1", "format": "AUDIO_MPEG"}),
    _directive("Alerts", "SetAlert", {
        "token": "a1", "type": "ALARM", "scheduledTime": "2026-12-01T07:00:00+0000",
        "assets": [{"assetId": "x", "url": "https://example.com/a.mp3"}], "assetPlayOrder": ["x"],
        "backgroundAlertAsset": "x", "loopCount": 2, "loopPauseInMilliSeconds": 300, "label": "wake up"}, None),
    _directive("AudioPlayer", "Play", {
        "playBehavior": "REPLACE_ALL", "audioItem": {"audioItemId": "i1", "stream": {
            "url": "https://example.com/s.mp3", "streamFormat": "AUDIO_MPEG", "offsetInMilliseconds": 0,
            "expiryTime": "2026-12-01T08:00:00+0000", "token": "s1", "expectedPreviousToken": "",
            "progressReport": {"progressReportDelayInMilliseconds": 1000,
                               "progressReportIntervalInMilliseconds": 5000}}}}),
    _directive("AudioPlayer", "ClearQueue", {"clearBehavior": "CLEAR_ALL"}, None),
    _directive("Speaker", "SetVolume", {"volume": 30}, None),
    _directive("SpeechRecognizer", "ExpectSpeech", {"timeoutInMilliseconds": 8000}),
]


def _body(directives: list[bytes], audio: int) -> bytes:
    parts: list[tuple[list[tuple[str, str]], bytes]] = []
    for i, raw in enumerate(directives):
        parts.append(([("Content-Type", "application/json; charset=UTF-8")], raw))
        if audio:
            headers = [("Content-Type", "application/octet-stream"), ("Content-ID", f"<speak-{i}>")]
            parts.append((headers, bytes(range(256)) * audio))
    return encode_parts(BOUNDARY, parts)


MULTIPART_SEEDS = [_body(DIRECTIVE_SEEDS[:1], 2), _body(DIRECTIVE_SEEDS[:3], 1), _body(DIRECTIVE_SEEDS, 0)]
CONTENT_TYPES = [
    f"multipart/related; boundary={BOUNDARY}; type=application/json".encode(),
    f'multipart/form-data; boundary="{BOUNDARY}"'.encode(),
]
CONFIG_SEEDS = [
    defaults_toml().encode(),
    b'[avs]\nendpoint = "https://127.0.0.1:8443"\nbackoff_s = [0.1, 0.2]\n[dialog.timeouts]\nlistening_s = 5.0\n',
    b'[daemon]\nlog_level = "debug"\n[button]\npin = -1\n[led]\nkind = "rgb"\npins = [5, 6, 13]\n',
    b"[attachments]\nmax_bytes = 1048576\ntotal_bytes = 4194304\nmax_age_s = 60.0\n",
]
CREDENTIALS_SEEDS = [
    b'{"client_id": "amzn1.application-oa2-client.x", "refresh_token": "fake-refresh-token", "client_secret": "s"}',
    b'{\n  "client_id": "c",\n  "refresh_token": "r"\n}\n',
]

# ----- targets --------------------------------------------------------------------------------------------------


def _feed_multipart(data: bytes, rng: random.Random) -> None:
    store = AttachmentStore(AttachmentSettings(max_bytes=4096, total_bytes=16384))
    seen: list[Directive] = []
    reader = DirectiveStreamReader(BOUNDARY, store, seen.append, lambda message, raw: None)
    i = 0
    while i < len(data):
        step = rng.choice((1, 7, 64, 1024, len(data)))
        reader.feed(data[i : i + step])
        i += step
    reader.finish()
    for directive in seen:
        _parse_payload(directive)


def _parse_payload(directive: Directive) -> None:
    name = directive.qualified_name
    if name == "Alerts.SetAlert":
        alert_from_directive(directive)
    elif name == "AudioPlayer.Play":
        parse_play(directive)
    elif name == "AudioPlayer.ClearQueue":
        parse_clear_behavior(directive)


def _structured(kind: str, seed: bytes, rng: random.Random) -> bytes:
    if kind == "config":
        return _toml(mutate_structure(tomllib.loads(seed.decode()), rng))
    return json.dumps(mutate_structure(json.loads(seed), rng)).encode()


class _Handler:
    """A directive handler that accepts everything it is given (the sequencer's intake is what is fuzzed)."""

    def handles(self) -> Collection[tuple[str, str]]:
        return {("SpeechSynthesizer", "Speak"), ("Alerts", "SetAlert"), ("AudioPlayer", "Play")}

    def blocking(self, directive: Directive) -> bool:
        return directive.name == "Speak"

    async def handle(self, directive: Directive) -> None:
        return None

    async def cancel(self, directive: Directive) -> None:
        return None


async def _no_report(event: Event) -> None:
    return None


def _sequencer() -> DirectiveSequencer:
    sequencer = DirectiveSequencer(_no_report, SequencerSettings(queue_size=64))
    sequencer.register(_Handler())
    return sequencer


_SEQUENCER = _sequencer()


def _directive_target(data: bytes, rng: random.Random) -> None:
    directive = parse_directive(data)
    _SEQUENCER.submit(directive)  # "never blocks, never raises"; its queues are bounded (nobody drains them here)
    _parse_payload(directive)


def _content_type_target(data: bytes, rng: random.Random) -> None:
    boundary_from_content_type(data.decode("latin-1"))


def _config_target(data: bytes, rng: random.Random) -> None:
    parse_config(parse_toml_text(data, "fuzz.toml"))


def _credentials_target(data: bytes, rng: random.Random) -> None:
    parse_credentials(data, "fuzz.json")


TARGETS: list[tuple[str, list[bytes], Callable[[bytes, random.Random], None], float]] = [
    # name, seeds, function, share of the inputs
    ("multipart", MULTIPART_SEEDS, _feed_multipart, 0.35),
    ("content_type", CONTENT_TYPES, _content_type_target, 0.05),
    ("directive", DIRECTIVE_SEEDS, _directive_target, 0.30),
    ("config", CONFIG_SEEDS, _config_target, 0.20),
    ("credentials", CREDENTIALS_SEEDS, _credentials_target, 0.10),
]


STRUCTURED = {"directive", "config", "credentials"}


class FuzzResult:
    # A plain class: bench/run.py loads bench modules outside sys.modules, where @dataclass cannot resolve them.
    def __init__(self) -> None:
        self.inputs: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()  # AvsdError: the expected refusal
        self.findings: list[str] = []  # anything else, with the traceback's last line
        self.slowest_s = 0.0
        self.slowest_target = ""
        self.over_1s = 0
        self.seconds = 0.0


def fuzz(total: int, *, seed: int = 8) -> FuzzResult:
    rng = random.Random(seed)
    result = FuzzResult()
    started = time.perf_counter()
    logging.disable(logging.WARNING)  # every refused input logs a warning; 100,000 of them are noise here
    try:
        _fuzz_all(total, rng, result)
    finally:
        logging.disable(logging.NOTSET)
    result.seconds = time.perf_counter() - started
    return result


def _fuzz_all(total: int, rng: random.Random, result: FuzzResult) -> None:
    for name, seeds, target, share in TARGETS:
        for _ in range(max(1, int(total * share))):
            seed_bytes = rng.choice(seeds)
            if name in STRUCTURED and rng.random() < 0.5:
                data = _structured(name, seed_bytes, rng)  # well-formed, with wrong values
            else:
                data = mutate(seed_bytes, rng)  # malformed bytes
            t0 = time.thread_time()
            try:
                target(data, rng)
            except AvsdError:
                result.rejected[name] += 1
            except Exception as exc:  # a finding: outside avsd's error tree
                last = traceback.format_exception(exc)[-2].strip().splitlines()[0]
                result.findings.append(f"{name}: {type(exc).__name__}: {str(exc)[:120]} at {last} input={data[:80]!r}")
            elapsed = time.thread_time() - t0
            result.inputs[name] += 1
            if elapsed > result.slowest_s:
                result.slowest_s, result.slowest_target = elapsed, name
            if elapsed > 1.0:
                result.over_1s += 1


def run(total: int = 100_000) -> list[dict[str, Any]]:
    result = fuzz(total)
    for finding in result.findings[:20]:
        print(f"# finding: {finding}", file=sys.stderr)
    rows: list[dict[str, Any]] = [
        {"metric": "fuzz_inputs", "value": sum(result.inputs.values()), "unit": "inputs", "target": ">= 100000"},
        {"metric": "fuzz_exceptions_outside_error_tree", "value": len(result.findings), "unit": "inputs",
         "target": "0"},
        {"metric": "fuzz_inputs_over_1s", "value": result.over_1s, "unit": "inputs", "target": "0"},
        {"metric": "fuzz_slowest_input_ms", "value": round(result.slowest_s * 1000, 1), "unit": "ms",
         "target": "< 1000", "where": result.slowest_target},
        {"metric": "fuzz_wall_time_s", "value": round(result.seconds, 1), "unit": "s", "target": "-"},
    ]
    for name, count in sorted(result.inputs.items()):
        rows.append({"metric": f"fuzz_{name}_inputs", "value": count, "unit": "inputs",
                     "rejected": result.rejected[name], "target": "-"})
    return rows


if __name__ == "__main__":
    for row in run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000):
        print(json.dumps(row))
