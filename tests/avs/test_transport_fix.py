"""The HTTP/2 fixes in avsd/avs/transport.py are the code path in use (httpx/httpcore are pinned for them).

If httpcore is upgraded past the pin and renames what the fix overrides, ``install_flow_fix`` refuses and these
tests fail instead of the daemon silently losing the fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpcore
import httpx
import pytest
from httpcore._async import http2 as httpcore_http2

from avsd.avs import transport
from avsd.avs.messages import Event
from avsd.emulator.scenario import Rule
from avsd.emulator.server import Emulator
from tests.avs.conftest import connected_device

FRAME = 320


def test_httpcore_builds_the_fixed_connection() -> None:
    assert httpcore_http2.AsyncHTTP2Connection is transport.FlowSafeHTTP2Connection
    assert transport.install_flow_fix() is True
    # What the fix overrides still exists in the installed httpcore (the pinned 1.0.x).
    for name in ("_wait_for_outgoing_flow", "_read_incoming_data", "handle_async_request", "_receive_events"):
        assert name in vars(transport._ORIGINAL_HTTP2), name
    assert httpcore.__version__.startswith("1.0."), httpcore.__version__
    assert httpx.__version__.startswith("0.28."), httpx.__version__


@pytest.mark.timeout(60)
async def test_upload_that_outruns_the_window_completes_through_the_fixed_path(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Recognize of 256 KiB (four times the 64 KiB initial window) sent as fast as it is produced, while the
    downchannel reader consumes frames on the same connection: every byte arrives, and the flow-control wait ran
    through FlowSafeHTTP2Connection (the stall of httpcore 1.0's own wait is what the fix removes)."""
    emulator.add_rule(Rule(match="SpeechRecognizer.Recognize", status=204))
    waits: list[int] = []
    fixed_wait = transport.FlowSafeHTTP2Connection._wait_for_outgoing_flow

    async def counting_wait(self: transport.FlowSafeHTTP2Connection, request: httpcore.Request, stream_id: int) -> int:
        waits.append(stream_id)
        return await fixed_wait(self, request, stream_id)

    monkeypatch.setattr(transport.FlowSafeHTTP2Connection, "_wait_for_outgoing_flow", counting_wait)
    frames = [bytes([i % 251]) * FRAME for i in range(256 * 1024 // FRAME)]

    async def audio() -> AsyncIterator[bytes]:
        for frame in frames:
            yield frame

    async with connected_device(tmp_path, emulator) as device:
        recognize = Event.new(
            "SpeechRecognizer",
            "Recognize",
            {"profile": "CLOSE_TALK", "format": "AUDIO_L16_RATE_16000_CHANNELS_1"},
            dialog_request_id="dialog-window",
        )
        async with asyncio.timeout(20):
            result = await device.client.send_event(recognize, audio=audio())
            record = await emulator.wait_for_event("SpeechRecognizer.Recognize")
            await record.body_complete.wait()
    assert result.status == 204
    assert bytes(record.audio) == b"".join(frames)
    assert waits, "the upload never waited for flow control through the fixed connection"
