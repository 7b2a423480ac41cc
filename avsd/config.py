"""The configuration file: TOML -> nested frozen dataclasses, validated key by key.

Each section is a frozen dataclass owned by the component it configures (``ConnectionSettings`` in
``avsd.avs.client``, ``WakeSettings`` in ``avsd.wake`` ...), its fields declared with
:func:`avsd.settings.setting` (help line, bounds, choices: once per field, also used for ``config/avsd.toml``).
Anything wrong -- not UTF-8, not TOML, nested too deeply, an unknown key, a wrong type, nan/inf, a value out of
bounds, an empty list where one is needed -- raises one :class:`ConfigError` naming the key and what is allowed;
the CLI turns it into one line and exit code 78.
Secrets (tokens, client secret) are never here: they live in the credentials file.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import socket
import ssl
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from avsd.agents.alerts import AlertsSettings
from avsd.agents.audio_player import AudioPlayerSettings
from avsd.agents.capabilities import CapabilitiesSettings
from avsd.agents.notifications import NotificationsSettings
from avsd.agents.sequencer import SequencerSettings
from avsd.agents.speaker import SpeakerSettings
from avsd.agents.template_runtime import TemplateRuntimeSettings
from avsd.assistant.settings import AssistantSettings
from avsd.audio.endpointer import EndpointerSettings
from avsd.audio.source import AudioSettings
from avsd.avs.attachments import AttachmentSettings
from avsd.avs.auth import DEFAULT_CODEPAIR_URL, DEFAULT_TOKEN_URL
from avsd.avs.client import ConnectionSettings
from avsd.dialog import DialogSettings
from avsd.errors import ConfigError
from avsd.focus import FocusSettings
from avsd.hw.button import ButtonSettings
from avsd.hw.leds import LedSettings
from avsd.phone.settings import PhoneSettings
from avsd.playback.base import PlaybackSettings
from avsd.settings import BoundError, check_bounds, describe, setting
from avsd.vdevice.settings import VdeviceSettings
from avsd.wake.base import WakeSettings

T = TypeVar("T")

DEFAULT_CONFIG_PATH = Path("/etc/avsd/avsd.toml")
DEFAULT_AUTHORIZE_URL = "https://www.amazon.com/ap/oa"
MACHINE_ID = Path("/etc/machine-id")


def default_state_dir() -> str:
    """systemd's StateDirectory= when run as the service, else the XDG state dir of the user."""
    if os.environ.get("STATE_DIRECTORY"):
        return os.environ["STATE_DIRECTORY"].split(":")[0]
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "avsd")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    product_id: str = setting("avsd", "AVS product (device type) id, case-sensitive")
    device_serial_number: str = setting("", "stable unique device serial; empty = derived from /etc/machine-id")
    client_id: str = setting("", "LWA client id used by `avsd login` (not secret; stored with the token)")
    token_url: str = setting("", f"LWA token URL; empty = {DEFAULT_TOKEN_URL}, or the emulator's")
    codepair_url: str = setting("", f"LWA code-pair URL; empty = {DEFAULT_CODEPAIR_URL}, or the emulator's")
    authorize_url: str = setting(
        "", f"LWA consent page for `avsd login --browser`; empty = {DEFAULT_AUTHORIZE_URL}, or the emulator's"
    )
    credentials_file: str = setting("", "0600 JSON with client_id, refresh_token; empty = <state_dir>/credentials.json")
    refresh_ahead_s: float = setting(300.0, "refresh the access token this long before it expires", min=0.0)


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    state_dir: str = setting("", "alerts, volume, outbox; empty = StateDirectory or XDG")
    log_level: str = setting("info", "logging level", choices=("debug", "info", "warning", "error"))
    inactivity_report_s: float = setting(3600.0, "System.UserInactivityReport period (AVS wants hourly)", min=1.0)


@dataclass(frozen=True, slots=True)
class Config:
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    avs: ConnectionSettings = field(default_factory=ConnectionSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    wake: WakeSettings = field(default_factory=WakeSettings)
    endpointing: EndpointerSettings = field(default_factory=EndpointerSettings)
    dialog: DialogSettings = field(default_factory=DialogSettings)
    playback: PlaybackSettings = field(default_factory=PlaybackSettings)
    button: ButtonSettings = field(default_factory=ButtonSettings)
    led: LedSettings = field(default_factory=LedSettings)
    focus: FocusSettings = field(default_factory=FocusSettings)
    speaker: SpeakerSettings = field(default_factory=SpeakerSettings)
    audio_player: AudioPlayerSettings = field(default_factory=AudioPlayerSettings)
    notifications: NotificationsSettings = field(default_factory=NotificationsSettings)
    template_runtime: TemplateRuntimeSettings = field(default_factory=TemplateRuntimeSettings)
    alerts: AlertsSettings = field(default_factory=AlertsSettings)
    capabilities: CapabilitiesSettings = field(default_factory=CapabilitiesSettings)
    sequencer: SequencerSettings = field(default_factory=SequencerSettings)
    assistant: AssistantSettings = field(default_factory=AssistantSettings)
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    phone: PhoneSettings = field(default_factory=PhoneSettings)
    vdevice: VdeviceSettings = field(default_factory=VdeviceSettings)

    @property
    def state_dir(self) -> Path:
        return Path(self.daemon.state_dir or default_state_dir())

    @property
    def credentials_path(self) -> Path:
        return (
            Path(self.auth.credentials_file)
            if self.auth.credentials_file
            else self.state_dir / "credentials.json"
        )

    def token_url(self) -> str:
        return self.auth.token_url or _lwa_url(self.avs.endpoint, "/auth/o2/token", DEFAULT_TOKEN_URL)

    def codepair_url(self) -> str:
        return self.auth.codepair_url or _lwa_url(
            self.avs.endpoint, "/auth/o2/create/codepair", DEFAULT_CODEPAIR_URL
        )


    def authorize_url(self) -> str:
        return self.auth.authorize_url or _lwa_url(self.avs.endpoint, "/ap/oa", DEFAULT_AUTHORIZE_URL)

    def device_serial_number(self, machine_id: Path = MACHINE_ID) -> str:
        """The configured DSN, else one derived from the machine id (stable across reinstalls of avsd)."""
        if self.auth.device_serial_number:
            return self.auth.device_serial_number
        try:
            seed = machine_id.read_text(encoding="ascii").strip()
        except OSError:
            seed = ""
        if not seed:
            seed = socket.gethostname()
        return "avsd-" + hashlib.sha256(("avsd:" + seed).encode()).hexdigest()[:16]


def _lwa_url(endpoint: str, path: str, amazon: str) -> str:
    """Amazon's LWA for the real regions; a URL endpoint (the emulator) serves LWA itself."""
    from avsd.avs.client import REGIONS

    if endpoint.strip().upper() in REGIONS or "amazon" in endpoint or "a2z.com" in endpoint:
        return amazon
    return endpoint.rstrip("/") + path


def load_config(path: Path | None) -> Config:
    """Read and validate a TOML file; ``None`` or a missing default path gives the defaults."""
    if path is None:
        return Config()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
    return parse_config(parse_toml_text(raw, str(path)))


def parse_toml_text(raw: bytes, where: str) -> dict[str, Any]:
    """Bytes of a TOML file -> a table; ConfigError for anything that is not valid TOML.

    TOML is UTF-8 by definition. tomllib parses nested arrays and inline tables recursively, so a 5,000-deep
    ``[[[[...`` ends in RecursionError, not TOMLDecodeError: both are a bad file, not a crash.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{where} is not valid UTF-8 (byte {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{where} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError("", f"{where} is not valid TOML: nested too deeply") from None


def parse_config(doc: Mapping[str, Any]) -> Config:
    config = _build(Config, doc, "")
    _check_files(config)
    return config


def _check_files(config: Config) -> None:
    """Files the config names and every command needs: a bad one is a config error (exit 78), not a traceback
    from deep inside the TLS set-up (FileNotFoundError, ssl.SSLError) when the daemon connects."""
    if config.avs.ca_file:
        try:
            ssl.create_default_context().load_verify_locations(cafile=config.avs.ca_file)
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            where = config.avs.ca_file
            raise ConfigError("avs.ca_file", f"cannot load a CA certificate from {where}: {reason}") from None


def override(config: Config, dotted_key: str, value: Any) -> Config:
    """``override(cfg, "avs.endpoint", url)``: a validated copy with one key changed (for CLI flags)."""
    section_name, _, key = dotted_key.partition(".")
    section = getattr(config, section_name)
    doc = {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}
    doc[key] = value
    rebuilt = _build(type(section), doc, section_name + ".")
    return dataclasses.replace(config, **{section_name: rebuilt})


def _build(cls: type[T], doc: Mapping[str, Any], prefix: str) -> T:
    if not isinstance(doc, Mapping):
        raise ConfigError(prefix.rstrip("."), "must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in fields:
            allowed = ", ".join(sorted(fields))
            raise ConfigError(f"{prefix}{key}", f"unknown key; allowed keys here: {allowed}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, hint):  # type: ignore[arg-type]
            kwargs[key] = value  # already built (``override`` rebuilds a section from its current values)
        elif dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{prefix}{key}.")  # type: ignore[arg-type]
        else:
            kwargs[key] = _check_value(f"{prefix}{key}", value, hint, fields[key].metadata)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(prefix.rstrip("."), str(exc)) from None


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(hint)[0])}"
    if hint is type(None):
        return '"none"'
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in hint)
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(hint, str(hint))


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(hint)
        # TOML has no null: an optional key takes the string "none" (and an optional integer, such as a pin,
        # also -1) to mean "unset".
        if type(None) in args and (
            value is None  # only from override(): TOML itself cannot say None
            or (isinstance(value, str) and value.strip().lower() == "none")
            or (int in args and value == -1 and not isinstance(value, bool))
        ):
            return True, None
        for arg in args:
            ok, coerced = _coerce(value, arg)
            if ok:
                return True, coerced
        return False, None
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return False, None
        item_hint = typing.get_args(hint)[0]
        items = []
        for item in value:
            ok, coerced = _coerce(item, item_hint)
            if not ok:
                return False, None
            items.append(coerced)
        return True, tuple(items)
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool), float(value) if not isinstance(
            value, bool
        ) and isinstance(value, int | float) else None
    if hint is str:
        return isinstance(value, str), value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return True, hint(value)
        except ValueError:
            return False, None
    if hint is type(None):
        return False, None  # TOML has no null; None is only ever a default
    return False, None


def _check_value(key: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> Any:
    ok, coerced = _coerce(value, hint)
    if not ok:
        raise ConfigError(key, f"expected {_type_name(hint)}, got {_short(value)}")
    try:
        check_bounds(coerced, meta)
    except BoundError as exc:
        raise ConfigError(key, str(exc)) from None
    return coerced


def _short(value: Any) -> str:
    """A bad value for the one-line error: a 5,000-deep list must not become a 10 kB line."""
    if isinstance(value, list | dict):  # repr() of a deeply nested value would itself recurse too deep
        return "a list" if isinstance(value, list) else "a table"
    text = repr(value)
    return f"{type(value).__name__} " + (text if len(text) <= 80 else text[:77] + "...")


# ----- the documented defaults file (config/avsd.toml is generated from the dataclasses, so it cannot drift) -----

SECTION_HELP: dict[str, str] = {
    "daemon": "the daemon itself",
    "avs": "the connection to Alexa Voice Service",
    "auth": "Login with Amazon (the refresh token lives in the credentials file, never here)",
    "audio": "the microphone",
    "wake": "the wake-word engine",
    "endpointing": "end of speech (webrtcvad)",
    "dialog": "the dialog: profiles, pre-roll and time limits",
    "dialog.timeouts": "longest time in each dialog state (seconds)",
    "playback": "the speaker: player backend and output device",
    "button": "the talk button (gpiozero, BCM pin numbers)",
    "led": "the status LEDs",
    "focus": "audio focus: what music does while Alexa speaks or an alert sounds",
    "speaker": "volume",
    "audio_player": "music and other AudioPlayer content",
    "notifications": "notification indicator and sounds",
    "template_runtime": "display cards (TemplateRuntime): off on a screenless appliance, on for headless front-ends",
    "alerts": "timers, alarms and reminders",
    "capabilities": "the capabilities published to AVS",
    "assistant": "the offline assistant (avs.backend = \"assistant\"): speech, music, optional servers",
    "sequencer": "the directive sequencer",
    "vdevice": "the virtual device (avsd vdevice): Bespoken's Virtual Device API for skill tests",
    "attachments": "memory for binary parts (Speak audio) while they arrive and until they are played",
}

_HEADER = """\
# avsd configuration (/etc/avsd/avsd.toml). Every key is listed with its default value; delete or comment out
# what you do not change. Secrets (refresh token, client secret, access keys) do not belong here: `avsd login`
# stores them in the credentials file (mode 0600). TOML has no null: optional keys take "none" (pins also -1).
# After editing: `systemctl reload avsd` (or restart) and check with `avsd doctor`.
# Generated by `avsd config --defaults`.
"""


def toml_value(value: Any) -> str:
    """A Python default as TOML. ``None`` is written ``"none"``, which :func:`parse_config` reads back as None."""
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return toml_value(value.value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _section_toml(name: str, value: Any, out: list[str]) -> None:
    out.append("")
    if name in SECTION_HELP:
        out.append(f"# {SECTION_HELP[name]}")
    out.append(f"[{name}]")
    nested: list[tuple[str, Any]] = []
    for f in dataclasses.fields(value):
        current = getattr(value, f.name)
        if dataclasses.is_dataclass(current):
            nested.append((f"{name}.{f.name}", current))
            continue
        description = describe(f.metadata)
        if description:
            out.append(f"# {description}")
        if f.metadata.get("secret"):
            out.append("# secret: leave empty here and set it in the environment of the service instead")
            out.append(f"{f.name} = {toml_value(type(current)())}")
        else:
            out.append(f"{f.name} = {toml_value(current)}")
    for child_name, child in nested:
        _section_toml(child_name, child, out)


def defaults_toml(config: Config | None = None) -> str:
    """The documented configuration file: every section and key with its help, allowed values and default."""
    config = config or Config()
    out: list[str] = [_HEADER.rstrip("\n")]
    for f in dataclasses.fields(config):
        _section_toml(f.name, getattr(config, f.name), out)
    return "\n".join(out) + "\n"


def changed_sections(old: Config, new: Config) -> list[str]:
    """Names of the top-level sections whose values differ (for a reload)."""
    return [f.name for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name)]
