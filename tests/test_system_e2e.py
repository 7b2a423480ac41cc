"""System 1.0 end to end (§6.8): SetEndpoint, ResetUserInactivity, UserInactivityReport, the Exception directive,
and ExceptionEncountered for directives the device cannot handle — pushed by the emulator over HTTP/2."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from avsd.avs.messages import Directive
from avsd.emulator.server import Emulator
from tests.harness import running_device


async def test_set_endpoint_moves_the_device_to_the_new_server(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    # The second server is "the other region" of one AVS: same certificate, and it accepts the tokens of the one
    # LWA (the device keeps refreshing at the first server's LWA, as with Amazon's global LWA).
    async with (
        Emulator(cert_dir=certs) as first,
        Emulator(cert_dir=certs, accept_any_token=True) as second,
        running_device(tmp_path, emulator=first) as device,
    ):
        await first.push_directive(Directive.new("System", "SetEndpoint", {"endpoint": second.base_url}))
        await second.wait_for_event("System.SynchronizeState", timeout=10)
        await device.daemon.client.wait_connected(5)
        assert device.daemon.client.base_url == second.base_url
        # Bad endpoints are refused with ExceptionEncountered and change nothing.
        await second.push_directive(Directive.new("System", "SetEndpoint", {"endpoint": "http://plain"}))
        report = await second.wait_for_event("System.ExceptionEncountered", timeout=5)
        assert device.daemon.client.base_url == second.base_url
    assert report.event["event"]["payload"]["error"]["type"] == "UNEXPECTED_INFORMATION_RECEIVED"


async def test_reset_user_inactivity_and_the_inactivity_report(tmp_path: Path) -> None:
    # The daemon's own System agent, with the hourly period shrunk through its config key.
    async with running_device(tmp_path, settings=[("daemon.inactivity_report_s", 1.0)]) as device:
        system = device.daemon.system
        first = await device.emulator.wait_for_event("System.UserInactivityReport", timeout=5)
        assert system.inactive_s >= 1
        await device.emulator.push_directive(Directive.new("System", "ResetUserInactivity"))
        async with asyncio.timeout(5):
            while system.inactive_s != 0:
                await asyncio.sleep(0.02)
        sent = sum(r.qualified_name == "System.UserInactivityReport" for r in device.emulator.records)
        second = await device.emulator.wait_for_event("System.UserInactivityReport", count=sent + 1, timeout=5)
    before = first.event["event"]["payload"]["inactiveTimeInSeconds"]
    after = second.event["event"]["payload"]["inactiveTimeInSeconds"]
    assert isinstance(before, int) and before >= 1
    assert isinstance(after, int) and after <= 1  # counted from the reset, not from the start


async def test_exception_directive_is_logged_and_not_answered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="avsd.agents.system")
    async with running_device(tmp_path) as device:
        payload = {"code": "INVALID_REQUEST_EXCEPTION", "description": "the event was bad"}
        await device.emulator.push_directive(Directive.new("System", "Exception", payload))
        # A marker the device must answer, pushed after it on the same downchannel: directives are handled in
        # order, so once the marker's ExceptionEncountered is in, an answer to the Exception would be in too.
        marker = Directive.new("Unknown", "Marker", {})
        await device.emulator.push_directive(marker)
        await device.emulator.wait_for_event("System.ExceptionEncountered", timeout=5)
        answered = [
            json.loads(r.event["event"]["payload"]["unparsedDirective"])["directive"]["header"]["messageId"]
            for r in device.emulator.records
            if r.qualified_name == "System.ExceptionEncountered" and r.event is not None
        ]
    assert "the event was bad" in caplog.text
    assert answered == [marker.message_id]


@pytest.mark.parametrize(
    ("directive", "error_type"),
    [
        (Directive.new("Unknown", "Thing", {"x": 1}), "UNSUPPORTED_OPERATION"),
        (Directive.new("Alerts", "SetAlert", {"token": "t", "type": "EGG", "scheduledTime": "x"}),
         "UNEXPECTED_INFORMATION_RECEIVED"),
        (Directive.new("Alerts", "DeleteAlert", {}), "UNEXPECTED_INFORMATION_RECEIVED"),
    ],
)
async def test_exception_encountered_for_directives_the_device_cannot_handle(
    tmp_path: Path, directive: Directive, error_type: str
) -> None:
    async with running_device(tmp_path) as device:
        await device.emulator.push_directive(directive)
        record = await device.emulator.wait_for_event("System.ExceptionEncountered", timeout=5)
    payload = record.event["event"]["payload"]
    assert payload["error"]["type"] == error_type
    assert json.loads(payload["unparsedDirective"])["directive"]["header"]["messageId"] == directive.message_id
    assert record.event["context"] == []
