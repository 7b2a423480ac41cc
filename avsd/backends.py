"""``--backend``: which Alexa a command talks to. One definition for every command that talks to Alexa.

=============  ==============================================================================================
``emulator``   avsd's own AVS server, started in the process on loopback, answering as ``--scenario FILE`` says
``assistant``  avsd's own AVS server with the offline assistant as its brain (speech recognition, intents, speech)
``avs``        Amazon's Alexa Voice Service, with the configured endpoint and the credentials of ``avsd login``
=============  ==============================================================================================

To add one: a :class:`Backend` member, its line in :data:`BACKEND_HELP`, and a branch in :func:`open_backend` that
yields a :class:`BackendSession`. ``avs.backend`` (config) takes :data:`DAEMON_BACKENDS`.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from avsd.emulator.record import SERVICE_KEPT_RECORDS

if TYPE_CHECKING:
    from avsd.config import Config
    from avsd.emulator.server import Emulator


class Backend(StrEnum):
    AVS = "avs"  # Amazon (needs `avsd login`)
    EMULATOR = "emulator"  # the local AVS server with scenarios (demo, tests)
    ASSISTANT = "assistant"  # the local AVS server with the offline assistant brain


# What ``avs.backend`` accepts: the daemon talks to Amazon or runs the offline assistant in its own process.
DAEMON_BACKENDS = (Backend.AVS.value, Backend.ASSISTANT.value)


BACKEND_HELP: dict[Backend, str] = {
    Backend.AVS: "Amazon's AVS with the configured endpoint and credentials (avsd login)",
    Backend.EMULATOR: "avsd's local AVS server in this process (with --scenario FILE)",
    Backend.ASSISTANT: "avsd's local AVS server in this process with the offline assistant ([assistant] config)",
}


def add_backend_argument(parser: argparse.ArgumentParser, *, default: Backend) -> None:
    """``--backend`` and ``--scenario`` with the same meaning on every command."""
    choices = "; ".join(f"{b.value}: {text}" for b, text in BACKEND_HELP.items())
    parser.add_argument(
        "--backend",
        type=Backend,
        choices=list(Backend),
        default=default,
        help=f"which Alexa to talk to (default {default.value}). {choices}",
    )
    parser.add_argument(
        "--scenario", type=Path, default=None, help="emulator scenario (TOML or JSON; --backend emulator)"
    )


@dataclass(frozen=True, slots=True)
class BackendSession:
    """Where the device connects: ``endpoint``/``ca_file`` empty = as configured; ``refresh_token`` None = the
    configured credentials; ``emulator`` is the running local server for ``emulator``."""

    backend: Backend
    endpoint: str = ""
    ca_file: str = ""
    refresh_token: str | None = None
    emulator: Emulator | None = None

    def describe(self) -> str:
        if self.emulator is not None:
            return f"emulator at {self.endpoint}"
        return f"{self.backend.value} (configured endpoint)"


@contextlib.asynccontextmanager
async def open_backend(
    backend: Backend,
    *,
    scenario_path: Path | None = None,
    cert_dir: Path | None = None,
    config: Config | None = None,
    kept_records: int | None = SERVICE_KEPT_RECORDS,
    stop_capture: bool = True,
) -> AsyncIterator[BackendSession]:
    """Start what ``backend`` needs for as long as the block runs. ConfigError for a bad scenario. ``config``
    supplies ``[assistant]`` for the assistant (default: the built-in defaults). ``kept_records``: how many
    requests the local server remembers (None: all, for a short run that reports them). ``stop_capture=False``:
    the local server never ends an upload itself (the phone bridge endpoints the caller's speech before asking)."""
    if backend is Backend.AVS:
        if scenario_path is not None:
            from avsd.errors import ConfigError

            raise ConfigError("--scenario", "only applies to --backend emulator")
        yield BackendSession(backend)
        return
    from avsd.emulator.scenario import load_scenario
    from avsd.emulator.server import Emulator

    if scenario_path is not None and backend is not Backend.EMULATOR:
        from avsd.errors import ConfigError

        raise ConfigError("--scenario", "only applies to --backend emulator")
    scenario = load_scenario(scenario_path) if scenario_path is not None else None
    brain = None
    if backend is Backend.ASSISTANT:
        from avsd.assistant.brain import create_brain
        from avsd.config import Config

        brain = create_brain((config or Config()).assistant)
    from avsd.assistant.brain import AssistantBrain

    lifecycle = brain if isinstance(brain, AssistantBrain) else None  # its decoder pool starts and stops
    async with Emulator(
        cert_dir=cert_dir, scenario=scenario, brain=brain, kept_records=kept_records, stop_capture=stop_capture
    ) as emulator:
        if lifecycle is not None:
            await lifecycle.start()
        try:
            yield BackendSession(
                backend,
                endpoint=emulator.base_url,
                ca_file=str(emulator.ca_file),
                refresh_token=emulator.refresh_token,
                emulator=emulator,
            )
        finally:
            if lifecycle is not None:
                await lifecycle.stop()


def session_config(config: Config, session: BackendSession, scratch: Path) -> Config:
    """``config`` pointed at the session: for the emulator its URL and CA (for AVS and for media), its refresh
    token saved in ``scratch/credentials.json`` (never over the device's own credentials); for AVS unchanged."""
    if session.refresh_token is None:
        return config
    import dataclasses

    from avsd.avs.credentials import Credentials, save_credentials
    from avsd.config import override

    credentials = scratch / "credentials.json"
    save_credentials(credentials, Credentials("avsd-emulator", session.refresh_token))
    config = override(config, "avs.endpoint", session.endpoint)
    config = override(config, "avs.ca_file", session.ca_file)
    config = override(config, "playback.ca_file", session.ca_file)
    return dataclasses.replace(
        config, auth=dataclasses.replace(config.auth, token_url="", credentials_file=str(credentials))
    )
