"""``[vdevice]``: the virtual device's server (``avsd vdevice``). Command-line options override these keys."""

from __future__ import annotations

from dataclasses import dataclass

from avsd.errors import ConfigError
from avsd.settings import setting
from avsd.vdevice.homophones import Homophones

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class VdeviceSettings:
    host: str = setting(LOOPBACK, "address the virtual device listens on (loopback unless you mean otherwise)")
    port: int = setting(8734, "TCP port of the virtual device", min=0, max=65535)
    tokens_file: str = setting("", "tokens (user_id), one per line; empty = one generated in the state directory")
    public_url: str = setting("", "URL clients reach the server at (for audio links); empty = http://host:port")
    homophones: tuple[str, ...] = setting(
        (), 'speech-to-text corrections for every transcript, each "word=heard1,heard2" (Bespoken\'s semantics)'
    )
    token_homophones: tuple[str, ...] = setting(
        (), 'the same for one token, by the identity printed for it: "vdevice-0123abcd4567:word=heard1,heard2"'
    )
    workers: int = setting(1, "server processes answering on the one port (--workers); the store is shared",
                           min=1, max=64)
    stt_workers: int = setting(
        0, "processes per server transcribing replies with pocketsphinx (0 = the cores / workers, at least 1)",
        min=0, max=64,
    )
    allow_private_audio_urls: bool = setting(
        False, "let audio_url fetch from loopback and private addresses (a lab network); off = no SSRF"
    )


def parse_homophone_rule(text: str, key: str) -> tuple[str, list[str]]:
    word, sep, heard = text.partition("=")
    heard_list = [h.strip() for h in heard.split(",") if h.strip()]
    if not sep or not word.strip() or not heard_list:
        raise ConfigError(key, f"{text!r}: expected \"word=heard1,heard2\"")
    return word.strip(), heard_list


def homophones_of(settings: VdeviceSettings) -> tuple[Homophones, dict[str, Homophones]]:
    """(rules for every transcript, rules by token identity) from the config's strings."""
    common = [parse_homophone_rule(t, "vdevice.homophones") for t in settings.homophones]
    per_token: dict[str, list[tuple[str, list[str]]]] = {}
    for text in settings.token_homophones:
        identity, sep, rule = text.partition(":")
        if not sep or not identity.strip():
            raise ConfigError("vdevice.token_homophones", f"{text!r}: expected \"IDENTITY:word=heard1,heard2\"")
        per_token.setdefault(identity.strip(), []).append(parse_homophone_rule(rule, "vdevice.token_homophones"))
    return common, dict(per_token)
