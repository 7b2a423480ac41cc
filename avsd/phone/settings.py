"""The ``[phone]`` configuration section and the bridge's secrets. Light: imported by ``avsd.config``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from avsd.errors import ConfigError
from avsd.phone.core import SegmenterSettings

LOOPBACK = "127.0.0.1"  # the same default bind as avsd.web (kept import-light here)


@dataclass(frozen=True, slots=True)
class PhoneSettings:
    host: str = field(default=LOOPBACK, metadata={"help": "address the bridge listens on (a tunnel gives it wss://)"})
    port: int = field(default=8088, metadata={"help": "port the bridge listens on", "min": 0, "max": 65535})
    public_url: str = field(
        default="", metadata={"help": "public https:// origin Twilio/Vonage reach (signatures are checked on it)"}
    )
    twilio_auth_token: str = field(
        default="", metadata={"help": "Twilio auth token (or $TWILIO_AUTH_TOKEN); empty = Twilio routes refuse"}
    )
    vonage_signature_secret: str = field(
        default="", metadata={"help": "Vonage signature secret (or $VONAGE_SIGNATURE_SECRET) for signed webhooks"}
    )
    vonage_unsigned: bool = field(
        default=False, metadata={"help": "accept Vonage webhooks without a signature (no secret configured)"}
    )
    vonage_rate: int = field(
        default=16000, metadata={"help": "Vonage websocket audio rate", "choices": (8000, 16000)}
    )
    token_ttl_s: float = field(default=60.0, metadata={"help": "a stream's one-time token expires after", "min": 1.0})
    lead_ms: int = field(
        default=100, metadata={"help": "reply audio sent ahead of real time (jitter buffer)", "min": 0, "max": 1000}
    )
    record_dir: str = field(
        default="", metadata={"help": "save each caller utterance as a WAV here; empty = never written to disk"}
    )
    segmenter: SegmenterSettings = field(default_factory=SegmenterSettings)


@dataclass(frozen=True, slots=True)
class PhoneSecrets:
    twilio_auth_token: str = ""
    vonage_signature_secret: str = ""

    @classmethod
    def resolve(cls, settings: PhoneSettings) -> PhoneSecrets:
        """The environment wins over the config file (systemd credentials, a .env the tunnel tool writes)."""
        return cls(
            os.environ.get("TWILIO_AUTH_TOKEN") or settings.twilio_auth_token,
            os.environ.get("VONAGE_SIGNATURE_SECRET") or settings.vonage_signature_secret,
        )


def check_settings(settings: PhoneSettings, secrets: PhoneSecrets) -> None:
    """Refuse a bridge that nobody could call safely: one line naming the key (exit 78)."""
    if not secrets.twilio_auth_token and not secrets.vonage_signature_secret and not settings.vonage_unsigned:
        raise ConfigError(
            "phone.twilio_auth_token",
            "set it (or $TWILIO_AUTH_TOKEN), or phone.vonage_signature_secret (or $VONAGE_SIGNATURE_SECRET), "
            "or phone.vonage_unsigned = true: no route could be verified",
        )
    if not settings.public_url and settings.host not in (LOOPBACK, "localhost", "::1"):
        # Signatures are checked against the public URL; without one the request's Host header would be used,
        # which a stranger controls once the bridge listens beyond loopback.
        raise ConfigError("phone.public_url", f"required when phone.host is {settings.host!r} (not loopback)")
    if settings.public_url and not settings.public_url.startswith(("https://", "http://")):
        raise ConfigError("phone.public_url", f"must start with https:// (got {settings.public_url!r})")
