"""The credentials file: client id, optional client secret, refresh token. JSON, mode 0600, written atomically.

Secrets never appear in ``repr``, logs or exception messages.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from avsd.errors import CredentialsError

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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CredentialsError(f"no credentials at {path}: run `avsd login` first") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials {path}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Someone loosened it by hand; tighten rather than refuse, and say so.
        _LOGGER.warning("credentials file %s was readable by others; setting mode 0600", path)
        with contextlib.suppress(OSError):
            path.chmod(0o600)
    try:
        doc = json.loads(text)
    except ValueError:
        raise CredentialsError(f"credentials file {path} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"credentials file {path} must hold a JSON object")
    for key in ("client_id", "refresh_token"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise CredentialsError(f"credentials file {path} lacks {key!r}: run `avsd login` again")
    secret = doc.get("client_secret")
    return Credentials(
        doc["client_id"], doc["refresh_token"], secret if isinstance(secret, str) and secret else None
    )


def save_credentials(path: Path, credentials: Credentials) -> None:
    """Write atomically: a 0600 temp file in the same directory, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.dumps(credentials.to_json(), indent=2).encode() + b"\n"
    fd, tmp_name = tempfile.mkstemp(prefix=".credentials-", dir=path.parent)  # mkstemp creates mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, 0o600)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
