"""The credentials file: client id, optional client secret, refresh token. JSON, mode 0600, written atomically.

Secrets never appear in ``repr``, logs or exception messages.
"""

from __future__ import annotations

import contextlib
import json
import logging
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

from avsd.errors import CredentialsError
from avsd.fileio import atomic_write

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Credentials:
    client_id: str
    refresh_token: str = field(repr=False)
    client_secret: str | None = field(default=None, repr=False)

    def with_refresh_token(self, refresh_token: str) -> Credentials:
        return replace(self, refresh_token=refresh_token)

    def to_json(self) -> dict[str, str]:
        out = {"client_id": self.client_id, "refresh_token": self.refresh_token}
        if self.client_secret:
            out["client_secret"] = self.client_secret
        return out


def load_credentials(path: Path) -> Credentials:
    try:
        st = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CredentialsError(f"no credentials at {path}: run `avsd login` first") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials {path}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Someone loosened it by hand; tighten rather than refuse, and say so.
        _LOGGER.warning("credentials file %s was readable by others; setting mode 0600", path)
        with contextlib.suppress(OSError):
            path.chmod(0o600)
    return parse_credentials(raw, str(path))


def parse_credentials(raw: bytes, where: str) -> Credentials:
    """The bytes of a credentials file -> Credentials; CredentialsError (never the secret) for anything else."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CredentialsError(f"credentials file {where} is not valid UTF-8 (byte {exc.start})") from None
    except ValueError:
        raise CredentialsError(f"credentials file {where} is not valid JSON") from None
    except RecursionError:  # json nests by recursion: a 5,000-deep [[[[ is a bad file, not a crash
        raise CredentialsError(f"credentials file {where} is not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"credentials file {where} must hold a JSON object")
    for key in ("client_id", "refresh_token"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise CredentialsError(f"credentials file {where} lacks {key!r}: run `avsd login` again")
    secret = doc.get("client_secret")
    return Credentials(
        doc["client_id"], doc["refresh_token"], secret if isinstance(secret, str) and secret else None
    )


def save_credentials(path: Path, credentials: Credentials) -> None:
    """Write atomically: a 0600 temp file in the same directory, fsync, rename, fsync the directory."""
    data = json.dumps(credentials.to_json(), indent=2).encode() + b"\n"
    atomic_write(path, data, mode=0o600, dir_mode=0o700)
