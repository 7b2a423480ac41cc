"""The configuration file: TOML -> nested frozen dataclasses, validated key by key.

Each section is a frozen dataclass owned by the component it configures (``ConnectionSettings`` in
``avsd.avs.client``, ``WakeSettings`` in ``avsd.wake`` ...). A field's ``metadata`` may carry ``help`` (one line,
also used for ``config/avsd.toml``), ``min`` / ``max`` and ``choices``. Anything wrong raises one
:class:`ConfigError` naming the key and what is allowed; the CLI turns it into one line and exit code 78.
Secrets (tokens, client secret) are never here: they live in the credentials file.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from avsd.audio.endpointer import EndpointerSettings
from avsd.audio.source import AudioSettings
from avsd.avs.auth import DEFAULT_CODEPAIR_URL, DEFAULT_TOKEN_URL
from avsd.avs.client import ConnectionSettings
from avsd.dialog import DialogSettings
from avsd.errors import ConfigError
from avsd.hw.button import ButtonSettings
from avsd.hw.leds import LedSettings
from avsd.playback.base import PlaybackSettings
from avsd.wake.base import WakeSettings

T = TypeVar("T")

DEFAULT_CONFIG_PATH = Path("/etc/avsd/avsd.toml")


def default_state_dir() -> str:
    """systemd's StateDirectory= when run as the service, else the XDG state dir of the user."""
    if os.environ.get("STATE_DIRECTORY"):
        return os.environ["STATE_DIRECTORY"].split(":")[0]
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "avsd")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    product_id: str = field(default="avsd", metadata={"help": "AVS product (device type) id, case-sensitive"})
    device_serial_number: str = field(
        default="", metadata={"help": "stable unique device serial; empty = derived from /etc/machine-id"}
    )
    client_id: str = field(
        default="",
        metadata={"help": "LWA client id used by `avsd login` (not secret; stored with the token)"},
    )
    token_url: str = field(
        default="", metadata={"help": f"LWA token URL; empty = {DEFAULT_TOKEN_URL}, or the emulator's"}
    )
    codepair_url: str = field(
        default="", metadata={"help": f"LWA code-pair URL; empty = {DEFAULT_CODEPAIR_URL}, or the emulator's"}
    )
    credentials_file: str = field(
        default="",
        metadata={"help": "0600 JSON with client_id, refresh_token; empty = <state_dir>/credentials.json"},
    )
    refresh_ahead_s: float = field(
        default=300.0, metadata={"help": "refresh the access token this long before it expires", "min": 0.0}
    )


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    state_dir: str = field(
        default="", metadata={"help": "alerts, volume, outbox; empty = StateDirectory or XDG"}
    )
    log_level: str = field(
        default="info", metadata={"help": "logging level", "choices": ("debug", "info", "warning", "error")}
    )


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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    return parse_config(doc)


def parse_config(doc: Mapping[str, Any]) -> Config:
    return _build(Config, doc, "")


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
        if dataclasses.is_dataclass(hint):
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
        return "nothing"
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(hint, str(hint))


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(hint):
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
    if hint is type(None):
        return False, None  # TOML has no null; None is only ever a default
    return False, None


def _check_value(key: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> Any:
    ok, coerced = _coerce(value, hint)
    if not ok:
        raise ConfigError(key, f"expected {_type_name(hint)}, got {type(value).__name__} {value!r}")
    choices = meta.get("choices")
    if choices is not None and coerced not in choices:
        raise ConfigError(key, f"{coerced!r} is not allowed; choose one of: {', '.join(map(str, choices))}")
    low, high = meta.get("min"), meta.get("max")
    values = coerced if isinstance(coerced, tuple) else (coerced,)
    for item in values:
        if isinstance(item, int | float) and not isinstance(item, bool):
            if low is not None and item < low:
                raise ConfigError(
                    key,
                    f"{item} is below the minimum {low}"
                    + (f" (allowed {low}..{high})" if high is not None else ""),
                )
            if high is not None and item > high:
                raise ConfigError(
                    key,
                    f"{item} is above the maximum {high}"
                    + (f" (allowed {low}..{high})" if low is not None else ""),
                )
    return coerced
