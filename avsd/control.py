"""The local control socket: ``<state_dir>/control.sock`` (mode 0600), one line in, one line out.

Protocol (ASCII, newline-terminated; one command per connection, or several in a row)::

    stop\\n            -> ok <alert token>\\n   the ringing alert was stopped
                      ok speech\\n          Alexa was talking and stopped
                      none\\n               nothing to stop
    mute\\n            -> ok muted\\n | ok unmuted\\n          (privacy mute toggle: the microphone is closed)
    volume up|down\\n  -> ok <volume>\\n
    play|pause|next|previous\\n -> ok\\n                   (PlaybackController button events)
    status\\n          -> ok <dialog state> <connection>\\n
    anything else     -> error <why>\\n

Only the owner of the state directory can connect (0600 socket in a 0700 directory): the daemon's user, root,
and ``avsd stop`` run by either. Commands run on the daemon's loop; the socket is served by asyncio, so no
thread touches daemon state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from avsd.errors import AvsdError

_LOGGER = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
MAX_LINE = 256
CLIENT_TIMEOUT_S = 5.0

# A handler gets the words after the command name and returns the reply line (without the newline).
Handler = Callable[[tuple[str, ...]], Awaitable[str]]


class ControlError(AvsdError):
    """``avsd stop`` could not reach the daemon's control socket. (New leaf, defined here.)"""

    code = "control-unreachable"


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


def parse_command(line: str) -> tuple[str, tuple[str, ...]]:
    """``"volume up"`` -> ``("volume", ("up",))``. Pure; an empty line gives ``("", ())``."""
    words = line.strip().lower().split()
    if not words:
        return "", ()
    return words[0], tuple(words[1:])


async def dispatch(handlers: Mapping[str, Handler], line: str) -> str:
    """One reply line for one command line. Handler failures become ``error ...`` rather than a dropped
    connection."""
    name, args = parse_command(line)
    handler = handlers.get(name)
    if handler is None:
        return f"error unknown command {name!r}; one of: {', '.join(sorted(handlers))}"
    try:
        return await handler(args)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        _LOGGER.exception("control command %r failed", name)
        return f"error {type(exc).__name__}: {exc}"


class ControlServer:
    """Serves :data:`Handler`s on a unix stream socket. ``await start()``, then ``await close()``."""

    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self._handlers = dict(handlers)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # A stale socket from a killed daemon would make bind fail; nobody else may own this path.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        # The umask makes the socket 0600 from the moment it exists (no window between bind and chmod).
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        _LOGGER.info("control socket at %s", self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    async with asyncio.timeout(CLIENT_TIMEOUT_S * 6):
                        raw = await reader.readline()
                except TimeoutError:
                    break
                if not raw:
                    break
                if len(raw) > MAX_LINE:
                    writer.write(b"error line too long\n")
                    await writer.drain()
                    break
                reply = await dispatch(self._handlers, raw.decode("ascii", errors="replace"))
                writer.write(reply.encode("utf-8", errors="replace").replace(b"\n", b" ") + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away; nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def send_command(path: Path, command: str, *, timeout_s: float = CLIENT_TIMEOUT_S) -> str:
    """Send one command to a running daemon and return its reply line (blocking; for the CLI)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
            sock.sendall(command.strip().encode("ascii") + b"\n")
            data = b""
            while not data.endswith(b"\n") and len(data) <= MAX_LINE * 4:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                data += chunk
        except FileNotFoundError:
            raise ControlError(f"avsd is not running (no control socket at {path})") from None
        except PermissionError:
            raise ControlError(f"no permission for {path}: run as the avsd user or root") from None
        except (ConnectionRefusedError, TimeoutError, OSError) as exc:
            raise ControlError(f"cannot talk to avsd at {path}: {exc}") from None
    return data.decode("utf-8", errors="replace").strip()
