"""TemplateRuntime: cards parsed from RenderTemplate / RenderPlayerInfo, observers isolated, declared only when
enabled, and pushed by the emulator to a running device (real HTTP/2)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from avsd.agents.capabilities import CAPABILITIES_PATH
from avsd.agents.template_runtime import Card, CardKind, TemplateRuntimeAgent, parse_card
from avsd.avs.messages import Directive, Header
from avsd.emulator.server import Emulator
from avsd.errors import DirectiveParseError
from tests.harness import running_device


def directive(name: str, payload: dict[str, Any]) -> Directive:
    return Directive(Header("TemplateRuntime", name, "m-1", "d-1"), payload, json.dumps(payload))


@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        (
            "RenderTemplate",
            {"token": "t1", "type": "BodyTemplate2", "title": {"mainTitle": "Seattle", "subTitle": "Today"},
             "textField": "Rain", "image": {"sources": [{"url": "https://x/y.png", "size": "SMALL"}]}},
            ("t1", "BodyTemplate2", "Seattle", "Today", "Rain"),
        ),
        (
            "RenderTemplate",
            {"token": "t2", "type": "ListTemplate1", "title": {"mainTitle": "Shopping"},
             "listItems": [{"leftTextField": "1.", "rightTextField": "milk"}, {"leftTextField": "2.",
                                                                              "rightTextField": "eggs"}]},
            ("t2", "ListTemplate1", "Shopping", "", "1. milk; 2. eggs"),
        ),
        (
            "RenderTemplate",
            {"token": "t3", "type": "WeatherTemplate", "title": {"mainTitle": "Berlin"}, "currentWeather": "12°",
             "description": "cloudy"},
            ("t3", "WeatherTemplate", "Berlin", "", "12° cloudy"),
        ),
        (
            "RenderPlayerInfo",
            {"audioItemId": "a1", "content": {"title": "Song", "titleSubtext1": "Artist", "titleSubtext2": "Album",
                                              "provider": {"name": "Radio"}}, "controls": []},
            ("a1", "PlayerInfo", "Song", "Artist", "Album Radio"),
        ),
    ],
)
def test_cards(name: str, payload: dict[str, Any], expected: tuple[str, ...]) -> None:
    card = parse_card(directive(name, payload))
    assert (card.token, card.template, card.title, card.subtitle, card.text) == expected
    assert card.kind is CardKind(name) and card.payload == payload and card.dialog_request_id == "d-1"


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("RenderTemplate", {"type": "BodyTemplate1"}),
        ("RenderTemplate", {"token": "t", "type": ""}),
        ("RenderPlayerInfo", {"audioItemId": "a"}),
        ("RenderPlayerInfo", {"content": {}}),
    ],
)
def test_bad_cards_are_parse_errors(name: str, payload: dict[str, Any]) -> None:
    with pytest.raises(DirectiveParseError):
        parse_card(directive(name, payload))


async def test_observers_are_isolated(caplog: pytest.LogCaptureFixture) -> None:
    agent = TemplateRuntimeAgent()
    seen: list[Card] = []

    def broken(card: Card) -> None:
        raise RuntimeError("observer bug")

    agent.observers.add(broken)
    agent.observers.add(seen.append)
    await agent.handle(directive("RenderTemplate", {"token": "t", "type": "BodyTemplate1"}))
    assert [c.token for c in seen] == ["t"] and [c.token for c in agent.cards] == ["t"]
    assert "observer bug" in caplog.text and sum(agent.observers.failures.values()) == 1


async def _published_interfaces(emulator: Emulator) -> set[str]:
    async with asyncio.timeout(10):
        while not (puts := [r for r in emulator.records if r.path == CAPABILITIES_PATH and r.body]):
            await emulator._changed.wait()
    return {c["interface"] for c in json.loads(puts[0].body)["capabilities"]}


@pytest.mark.timeout(60)
async def test_declared_only_when_enabled_and_cards_arrive(tmp_path: Path) -> None:
    async with running_device(tmp_path / "off") as device:
        assert device.daemon.templates is None
        assert "TemplateRuntime" not in await _published_interfaces(device.emulator)
    async with running_device(tmp_path / "on", settings=[("template_runtime.enabled", True)]) as device:
        assert "TemplateRuntime" in await _published_interfaces(device.emulator)
        agent = device.daemon.templates
        assert agent is not None
        arrived: asyncio.Queue[Card] = asyncio.Queue()
        agent.observers.add(arrived.put_nowait)
        await device.emulator.push_directive(
            {"header": {"namespace": "TemplateRuntime", "name": "RenderPlayerInfo", "messageId": "p1"},
             "payload": {"audioItemId": "song-1", "content": {"title": "Song"}}}
        )
        card = await asyncio.wait_for(arrived.get(), 10)
        assert card.kind is CardKind.RENDER_PLAYER_INFO and card.title == "Song"
