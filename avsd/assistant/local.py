"""``avs.backend = "assistant"``: the local AVS server with the assistant brain, in the daemon's own process.

The device side is unchanged: it still speaks AVS over HTTP/2 + TLS, to 127.0.0.1 instead of Amazon. The
server's certificate and the device's refresh token live in the state directory (the token file is 0600, like
the credentials), so a restart keeps both and no other local user can talk to the server without the token.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

from avsd.avs.credentials import Credentials, load_credentials, save_credentials
from avsd.config import Config, override
from avsd.errors import AvsdError

_log = logging.getLogger(__name__)

CLIENT_ID = "avsd-assistant"


@contextlib.asynccontextmanager
async def local_assistant(config: Config) -> AsyncIterator[Config]:
    """Start the server + brain; yield the device config pointing at it; stop both on exit."""
    from avsd.assistant.brain import AssistantBrain, create_brain
    from avsd.emulator.record import SERVICE_KEPT_RECORDS
    from avsd.emulator.server import Emulator

    state = config.state_dir / "assistant"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Its own credentials file: switching back to Amazon later finds the Amazon credentials untouched.
    creds_path = state / "credentials.json"
    refresh_token = None
    with contextlib.suppress(AvsdError, OSError, ValueError):
        existing = load_credentials(creds_path)
        if existing.client_id == CLIENT_ID:
            refresh_token = existing.refresh_token
    if refresh_token is None:
        refresh_token = f"Atzr|assistant-{secrets.token_urlsafe(24)}"
        save_credentials(creds_path, Credentials(CLIENT_ID, refresh_token))
    brain = create_brain(config.assistant)
    emulator = Emulator(
        cert_dir=state, refresh_token=refresh_token, client_id=CLIENT_ID, brain=brain, kept_records=SERVICE_KEPT_RECORDS
    )
    await emulator.start()
    if isinstance(brain, AssistantBrain):
        await brain.start()
    _log.info("offline assistant listening on %s", emulator.base_url)
    try:
        device = override(config, "avs.endpoint", emulator.base_url)
        device = override(device, "auth.credentials_file", str(creds_path))
        yield override(device, "avs.ca_file", str(emulator.ca_file))
    finally:
        if isinstance(brain, AssistantBrain):
            await brain.stop()
        await emulator.stop()
