"""Virtual-device tokens (``user_id``): a file of tokens, compared in constant time, each a device identity.

File format: one token per line, ``#`` starts a comment; an optional second field names the Amazon
credentials file that this token's device uses with ``--backend avs`` (Amazon gives one refresh token per
device identity, so N concurrent tokens need N identities). Against the local server every token simply gets
its own identity.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from avsd.errors import ConfigError

MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class TokenEntry:
    token: str
    identity: str  # stable, not the token itself: it may appear in logs and file names
    credentials: Path | None = None


class TokenBook:
    def __init__(self, entries: list[TokenEntry]) -> None:
        if not entries:
            raise ConfigError("vdevice.tokens", "no tokens: add at least one line to the tokens file")
        self._entries = entries

    @classmethod
    def from_file(cls, path: Path) -> TokenBook:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("vdevice.tokens", f"cannot read {path}: {exc.__class__.__name__}") from exc
        entries: list[TokenEntry] = []
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) > 2:
                raise ConfigError("vdevice.tokens", f"{path}:{number}: expected 'TOKEN [CREDENTIALS_FILE]'")
            if len(fields[0]) < MIN_TOKEN_LENGTH:
                raise ConfigError("vdevice.tokens", f"{path}:{number}: token shorter than {MIN_TOKEN_LENGTH}")
            credentials = Path(fields[1]) if len(fields) == 2 else None
            entries.append(TokenEntry(fields[0], identity_of(fields[0]), credentials))
        return cls(entries)

    def lookup(self, token: str) -> TokenEntry | None:
        """The entry for ``token``, comparing against every entry (no early exit, no timing leak)."""
        found: TokenEntry | None = None
        candidate = token.encode()
        for entry in self._entries:
            if hmac.compare_digest(entry.token.encode(), candidate):
                found = entry
        return found

    @property
    def entries(self) -> tuple[TokenEntry, ...]:
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def identity_of(token: str) -> str:
    return "vdevice-" + hashlib.sha256(token.encode()).hexdigest()[:12]
