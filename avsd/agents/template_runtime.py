"""TemplateRuntime (protocol reference §6.x "Display cards"): RenderTemplate and RenderPlayerInfo -> :class:`Card`.

An optional capability (``template_runtime.enabled``): off on the appliance, which has no screen (AVS then sends
no cards, and one that comes anyway is answered UNSUPPORTED_OPERATION by the sequencer); on for headless uses
(``avsd demo`` prints the cards, front-ends read them from :attr:`TemplateRuntimeAgent.cards` or an observer).

Payloads, after TemplateRuntime 1.1:

- ``RenderTemplate``: ``token``, ``type`` (``BodyTemplate1``, ``BodyTemplate2``, ``ListTemplate1``,
  ``WeatherTemplate``, ...), ``title {mainTitle, subTitle}``, ``textField``, ``image``, ``skillIcon``, and per
  type ``listItems`` or weather fields; everything is kept in :attr:`Card.payload`.
- ``RenderPlayerInfo``: ``audioItemId``, ``content {title, titleSubtext1, titleSubtext2, header,
  mediaLengthInMilliseconds, art, provider {name, logo}}``, ``controls``; the card's title is the content's.

The SDK handles both immediately (HANDLE_IMMEDIATELY); here they are non-blocking, so a card that arrives after a
Speak in the same answer is shown once the Speak is done (put it first to show it at once). No events, no context.
Observers are isolated: one that raises is logged and the others still run.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from avsd.avs.messages import Directive
from avsd.errors import DirectiveParseError
from avsd.observers import Observers

_LOGGER = logging.getLogger(__name__)

NAMESPACE = "TemplateRuntime"
VERSION = "1.1"


class CardKind(StrEnum):
    RENDER_TEMPLATE = "RenderTemplate"
    RENDER_PLAYER_INFO = "RenderPlayerInfo"


@dataclass(frozen=True, slots=True)
class TemplateRuntimeSettings:
    enabled: bool = field(
        default=False,
        metadata={"help": "declare TemplateRuntime (display cards); off for a screenless appliance"},
    )
    history: int = field(default=20, metadata={"help": "cards kept for front-ends to read", "min": 1, "max": 1000})


@dataclass(frozen=True, slots=True)
class Card:
    kind: CardKind
    token: str  # RenderTemplate token, or the RenderPlayerInfo audioItemId
    template: str  # RenderTemplate type; "PlayerInfo" for RenderPlayerInfo
    title: str
    subtitle: str
    text: str
    payload: Mapping[str, Any]
    dialog_request_id: str | None = None

    def describe(self) -> str:
        """One line: ``BodyTemplate2 "Title" / subtitle: text``."""
        line = f'{self.template} "{self.title}"'
        if self.subtitle:
            line += f" / {self.subtitle}"
        if self.text:
            line += f": {self.text}"
        return line


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_card(directive: Directive) -> Card:
    """The card a directive carries; DirectiveParseError when the required fields are missing."""
    payload = directive.payload
    if directive.name == CardKind.RENDER_TEMPLATE:
        token, template = payload.get("token"), payload.get("type")
        if not isinstance(token, str) or not isinstance(template, str) or not template:
            raise DirectiveParseError("RenderTemplate needs string token and type", directive.raw)
        title = _map(payload.get("title"))
        text = _str(payload.get("textField"))
        if not text and isinstance(payload.get("listItems"), list):
            text = "; ".join(
                f"{_str(i.get('leftTextField'))} {_str(i.get('rightTextField'))}".strip()
                for i in payload["listItems"]
                if isinstance(i, Mapping)
            )
        if not text and template == "WeatherTemplate":
            text = " ".join(p for p in (_str(payload.get("currentWeather")), _str(payload.get("description"))) if p)
        return Card(
            CardKind.RENDER_TEMPLATE,
            token,
            template,
            _str(title.get("mainTitle")),
            _str(title.get("subTitle")),
            text,
            dict(payload),
            directive.dialog_request_id,
        )
    audio_item_id, content = payload.get("audioItemId"), payload.get("content")
    if not isinstance(audio_item_id, str) or not isinstance(content, Mapping):
        raise DirectiveParseError("RenderPlayerInfo needs string audioItemId and a content object", directive.raw)
    provider = _map(content.get("provider"))
    return Card(
        CardKind.RENDER_PLAYER_INFO,
        audio_item_id,
        "PlayerInfo",
        _str(content.get("title")),
        _str(content.get("titleSubtext1")),
        " ".join(p for p in (_str(content.get("titleSubtext2")), _str(provider.get("name"))) if p),
        dict(payload),
        directive.dialog_request_id,
    )


class TemplateRuntimeAgent:
    def __init__(self, settings: TemplateRuntimeSettings | None = None) -> None:
        self.settings = settings or TemplateRuntimeSettings()
        self.cards: deque[Card] = deque(maxlen=self.settings.history)
        self.observers: Observers[Card] = Observers("TemplateRuntime card")

    # ----- DirectiveHandler ---------------------------------------------------------------------------------

    def handles(self) -> Collection[tuple[str, str]]:
        return {(NAMESPACE, kind.value) for kind in CardKind}

    def blocking(self, directive: Directive) -> bool:
        return False

    async def handle(self, directive: Directive) -> None:
        card = parse_card(directive)
        self.cards.append(card)
        _LOGGER.info("card %s %s", card.kind, card.template)
        self.observers.notify(card)  # isolated: an observer's bug does not stop the others or the sequencer

    async def cancel(self, directive: Directive) -> None:
        return None
