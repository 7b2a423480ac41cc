"""Multipart parser throughput: a Speak-like response (JSON directive + 1 MB binary attachment).

``multipart_parse_mb_per_s`` feeds 16 KB reads (typical HTTP/2 DATA frames as httpx hands them over);
``multipart_parse_320b_reads_mb_per_s`` feeds 320-byte reads, the AVS PCM frame size the emulator sees while a
device streams audio (§4.3). Each value is the median of several runs.

Run alone: ``.venv/bin/python bench/bench_multipart.py``.
"""

from __future__ import annotations

import json
import random
import statistics
import time

from avsd.avs.messages import Directive
from avsd.avs.multipart import MultipartParser, PartData, encode_parts

READ_SIZE = 16 * 1024
SMALL_READ_SIZE = 320
ATTACHMENT_BYTES = 1024 * 1024
RUNS = 15


def _body(boundary: str) -> bytes:
    rng = random.Random(1234)
    audio = rng.randbytes(ATTACHMENT_BYTES)
    directive = Directive.new(
        "SpeechSynthesizer",
        "Speak",
        {"url": "cid:bench-audio", "format": "AUDIO_MPEG", "token": "bench"},
        dialog_request_id="dialog-1",
    )
    return encode_parts(
        boundary,
        [
            ([("Content-Type", "application/json; charset=UTF-8")], directive.to_json()),
            ([("Content-ID", "<bench-audio>"), ("Content-Type", "application/octet-stream")], audio),
        ],
    )


def _parse_once(body: bytes, boundary: str, read_size: int) -> float:
    chunks = [body[i : i + read_size] for i in range(0, len(body), read_size)]
    parser = MultipartParser(boundary)
    received = 0
    start = time.perf_counter()
    for chunk in chunks:
        for event in parser.feed(chunk):
            if isinstance(event, PartData):
                received += len(event.data)
    parser.finish()
    elapsed = time.perf_counter() - start
    if not parser.complete or received < ATTACHMENT_BYTES:
        raise RuntimeError("benchmark body did not parse completely")
    return elapsed


def run() -> list[dict[str, object]]:
    boundary = "854873ff-ac23-4ebd-b329-00bd8cccd94a"
    body = _body(boundary)
    rows: list[dict[str, object]] = []
    for metric, read_size, runs, target in (
        ("multipart_parse_mb_per_s", READ_SIZE, RUNS, ">= 100"),
        # 16 kHz 16-bit mono is 0.032 MB/s; 10 MB/s leaves room for hundreds of concurrent uploads.
        ("multipart_parse_320b_reads_mb_per_s", SMALL_READ_SIZE, 5, ">= 10"),
    ):
        times = [_parse_once(body, boundary, read_size) for _ in range(runs)]
        mb_per_s = len(body) / 1e6 / statistics.median(times)
        rows.append({"metric": metric, "value": round(mb_per_s, 1), "unit": "MB/s", "target": target})
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
