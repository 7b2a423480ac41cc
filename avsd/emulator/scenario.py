"""Emulator scenarios: what to answer to which event, and what to push on the downchannel when.

A scenario file (TOML or JSON, same shape)::

    reply_text = "optional default Speak text"
    [[rule]]
    match = "SpeechRecognizer.Recognize"   # "Ns.Name", "Ns.*" or "*"
    times = 1                              # optional: how many times the rule applies (default: always)
    delay_s = 0.0                          # wait before answering
    status = 200                           # optional; default 200 with directives, else 204
    stop_capture_after_s = 1.5             # optional: StopCapture after this much upload time instead of VAD
    fault = "rst_stream"                   # optional: a fault applied to this very request
    [[rule.directive]]                     # in the response; dialogRequestId copied from the event
    namespace = "SpeechSynthesizer"
    name = "Speak"
    speech = "What would you like?"        # -> MP3 attachment; url cid:..., format, token filled in
    [[rule.push]]                          # on the downchannel, after_s after the response
    after_s = 0.5
    namespace = "Alerts"
    name = "SetAlert"
    payload = { token = "t1", type = "TIMER", scheduledTime = "+2s" }   # "+Ns" -> now + N s, ISO-8601
    # payload = { token = "$active_alert" }  -> the sounding alert's token from the event's AlertsState context
    [[timeline]]                           # relative to the first downchannel
    at_s = 3.0
    fault = "goaway"
    [media.playlists]                      # served at media:<name> (see media.py); entries may be media: refs
    "radio.pls" = ["media:missing.mp3", "media:tone/440-20.mp3"]

Any payload string ``"media:<route>"`` (e.g. an AudioPlayer.Play ``stream.url``) becomes the server's own signed
HTTPS media URL.

Pure: loading, validation, matching and payload rendering; the server does the I/O.
"""

from __future__ import annotations

import datetime
import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsd.emulator.faults import Fault, fault_from_obj, matches
from avsd.emulator.media import MEDIA_SCHEME, PLAYLIST_SUFFIXES
from avsd.errors import ConfigError

_RELATIVE_TIME = re.compile(r"^\+(\d+(?:\.\d+)?)s$")


@dataclass(frozen=True, slots=True)
class DirectiveSpec:
    """A directive to send. ``speech`` makes an MP3 attachment and fills ``url``/``format``/``token``."""

    namespace: str
    name: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    speech: str | None = None
    after_s: float = 0.0  # only for rule pushes: delay after the response

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}.{self.name}"


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """At ``at_s`` after the first downchannel opened: push ``directive`` or apply ``fault``."""

    at_s: float
    directive: DirectiveSpec | None = None
    fault: Fault | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    match: str = "*"
    times: int | None = None
    delay_s: float = 0.0
    status: int | None = None
    directives: tuple[DirectiveSpec, ...] = ()
    push: tuple[DirectiveSpec, ...] = ()
    stop_capture_after_s: float | None = None
    fault: Fault | None = None

    def response_status(self) -> int:
        if self.status is not None:
            return self.status
        return 200 if self.directives else 204


@dataclass(frozen=True, slots=True)
class Scenario:
    reply_text: str | None = None
    rules: tuple[Rule, ...] = ()
    timeline: tuple[TimelineItem, ...] = ()
    # ``[media.playlists]``: name (ending .m3u, .m3u8 or .pls) -> entries (``media:...`` or absolute URLs).
    media_playlists: tuple[tuple[str, tuple[str, ...]], ...] = ()


class RuleBook:
    """Rules in priority order with their use counts. Rules added later (``Emulator.add_rule``) come first."""

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self._rules: list[Rule] = list(rules)
        self._used: dict[int, int] = {}

    def add_first(self, rule: Rule) -> None:
        self._rules.insert(0, rule)

    def take(self, qualified_name: str) -> Rule | None:
        """The first matching rule with uses left; counts one use."""
        for rule in self._rules:
            used = self._used.get(id(rule), 0)
            if matches(rule.match, qualified_name) and (rule.times is None or used < rule.times):
                self._used[id(rule)] = used + 1
                return rule
        return None


ACTIVE_ALERT = "$active_alert"


def active_alert_token(event: Mapping[str, Any] | None) -> str | None:
    """The token of the sounding alert in an event's ``Alerts.AlertsState`` context, if any."""
    for entry in (event or {}).get("context") or ():
        header = entry.get("header", {}) if isinstance(entry, Mapping) else {}
        if header.get("namespace") == "Alerts" and header.get("name") == "AlertsState":
            active = entry.get("payload", {}).get("activeAlerts") or []
            if active and isinstance(active[0], Mapping) and isinstance(active[0].get("token"), str):
                return str(active[0]["token"])
    return None


def render_payload(
    payload: Any,
    now: datetime.datetime,
    event: Mapping[str, Any] | None = None,
    media_url: Callable[[str], str] | None = None,
) -> Any:
    """Copy ``payload`` replacing strings ``"+Ns"`` with ``now + N s`` as AVS writes times (``...+0000``),
    ``"$active_alert"`` with the sounding alert's token from the event's context (what "Alexa, stop" deletes), and
    ``"media:<route>"`` with the server's own signed media URL (``media_url``, see media.py)."""
    if isinstance(payload, Mapping):
        return {k: render_payload(v, now, event, media_url) for k, v in payload.items()}
    if isinstance(payload, list):
        return [render_payload(v, now, event, media_url) for v in payload]
    if isinstance(payload, str):
        if media_url is not None and payload.startswith(MEDIA_SCHEME):
            return media_url(payload)
        if payload == ACTIVE_ALERT:
            return active_alert_token(event) or ""
        m = _RELATIVE_TIME.match(payload)
        if m:
            when = now.astimezone(datetime.UTC) + datetime.timedelta(seconds=float(m.group(1)))
            return when.strftime("%Y-%m-%dT%H:%M:%S+0000")
    return payload


# ---------------------------------------------------------------------------------------------- loading


def _number(obj: Mapping[str, Any], key: str, where: str, default: float, lo: float, hi: float) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(f"{where}.{key}", f"must be a number within {lo}..{hi}")
    return float(value)


def _directive(obj: Any, where: str) -> DirectiveSpec:
    if not isinstance(obj, Mapping):
        raise ConfigError(where, "must be a table")
    unknown = set(obj) - {"namespace", "name", "payload", "speech", "after_s"}
    if unknown:
        raise ConfigError(where, f"unknown keys {sorted(unknown)}")
    ns, name = obj.get("namespace"), obj.get("name")
    if not isinstance(ns, str) or not ns or not isinstance(name, str) or not name:
        raise ConfigError(where, "namespace and name are required strings")
    payload = obj.get("payload", {})
    if not isinstance(payload, Mapping):
        raise ConfigError(f"{where}.payload", "must be a table")
    speech = obj.get("speech")
    if speech is not None and not isinstance(speech, str):
        raise ConfigError(f"{where}.speech", "must be a string")
    after_s = _number(obj, "after_s", where, 0.0, 0.0, 3600.0)
    return DirectiveSpec(ns, name, dict(payload), speech, after_s)


def _rule(obj: Any, where: str) -> Rule:
    if not isinstance(obj, Mapping):
        raise ConfigError(where, "must be a table")
    known = {"match", "times", "delay_s", "status", "directive", "push", "stop_capture_after_s", "fault"}
    unknown = set(obj) - known
    if unknown:
        raise ConfigError(where, f"unknown keys {sorted(unknown)}")
    match = obj.get("match", "*")
    if not isinstance(match, str) or not match:
        raise ConfigError(f"{where}.match", "must be 'Ns.Name', 'Ns.*' or '*'")
    times = obj.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise ConfigError(f"{where}.times", "must be a positive integer")
    status = obj.get("status")
    if status is not None and (
        isinstance(status, bool)
        or not isinstance(status, int)
        or (status not in (200, 204) and not 400 <= status <= 599)
    ):
        raise ConfigError(f"{where}.status", "must be 200, 204 or 4xx/5xx")
    stop_after = obj.get("stop_capture_after_s")
    if stop_after is not None:
        stop_after = _number(obj, "stop_capture_after_s", where, 0.0, 0.0, 600.0)
    fault = fault_from_obj(obj["fault"], f"{where}.fault") if "fault" in obj else None
    return Rule(
        match=match,
        times=times,
        delay_s=_number(obj, "delay_s", where, 0.0, 0.0, 600.0),
        status=status,
        directives=tuple(
            _directive(d, f"{where}.directive[{i}]") for i, d in enumerate(obj.get("directive", []))
        ),
        push=tuple(_directive(d, f"{where}.push[{i}]") for i, d in enumerate(obj.get("push", []))),
        stop_capture_after_s=stop_after,
        fault=fault,
    )


def _timeline_item(obj: Any, where: str) -> TimelineItem:
    if not isinstance(obj, Mapping):
        raise ConfigError(where, "must be a table")
    at_s = _number(obj, "at_s", where, 0.0, 0.0, 86400.0)
    rest = {k: v for k, v in obj.items() if k != "at_s"}
    if "fault" in rest:
        if set(rest) != {"fault"}:
            raise ConfigError(where, "a fault item has only at_s and fault")
        return TimelineItem(at_s, fault=fault_from_obj(rest["fault"], f"{where}.fault"))
    return TimelineItem(at_s, directive=_directive(rest, where))


def _media(obj: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(obj, Mapping) or set(obj) - {"playlists"}:
        raise ConfigError("media", "must be a table with only 'playlists'")
    playlists = obj.get("playlists", {})
    if not isinstance(playlists, Mapping):
        raise ConfigError("media.playlists", "must be a table of name = [entries]")
    out = []
    for name, entries in playlists.items():
        where = f"media.playlists.{name}"
        if not name.endswith(PLAYLIST_SUFFIXES) or "/" in name:
            raise ConfigError(where, f"a playlist name ends in {', '.join(PLAYLIST_SUFFIXES)} (no '/')")
        if not isinstance(entries, list) or not entries or not all(isinstance(e, str) and e for e in entries):
            raise ConfigError(where, "must be a non-empty array of URLs or media: references")
        out.append((name, tuple(entries)))
    return tuple(out)


def scenario_from_obj(doc: Mapping[str, Any]) -> Scenario:
    unknown = set(doc) - {"reply_text", "rule", "timeline", "media"}
    if unknown:
        raise ConfigError("scenario", f"unknown keys {sorted(unknown)}")
    reply_text = doc.get("reply_text")
    if reply_text is not None and not isinstance(reply_text, str):
        raise ConfigError("reply_text", "must be a string")
    rules, timeline = doc.get("rule", []), doc.get("timeline", [])
    if not isinstance(rules, list) or not isinstance(timeline, list):
        raise ConfigError("scenario", "rule and timeline must be arrays of tables")
    return Scenario(
        media_playlists=_media(doc["media"]) if "media" in doc else (),
        reply_text=reply_text,
        rules=tuple(_rule(r, f"rule[{i}]") for i, r in enumerate(rules)),
        timeline=tuple(
            sorted(
                (_timeline_item(t, f"timeline[{i}]") for i, t in enumerate(timeline)),
                key=lambda item: item.at_s,
            )
        ),
    )


def load_scenario(path: Path) -> Scenario:
    """Load a ``.toml`` or ``.json`` scenario; problems raise ConfigError naming the key."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read scenario: {exc.strerror}") from exc
    try:
        if path.suffix == ".json":
            doc = json.loads(text)
        elif path.suffix == ".toml":
            doc = tomllib.loads(text.decode("utf-8"))
        else:
            raise ConfigError(str(path), "scenario files end in .toml or .json")
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(str(path), f"cannot parse: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(str(path), "top level must be a table/object")
    return scenario_from_obj(doc)
