"""Who answers the device: Amazon's AVS, or avsd's own local AVS server with a brain.

One small enum so that ``avs.backend`` (config) and the ``--backend`` options of ``avsd demo`` share their values.
"""

from __future__ import annotations

from enum import StrEnum


class Backend(StrEnum):
    AVS = "avs"  # Amazon (needs `avsd login`)
    EMULATOR = "emulator"  # the local AVS server with scenarios (demo, tests)
    ASSISTANT = "assistant"  # the local AVS server with the offline assistant brain


# What ``avs.backend`` accepts: the daemon talks to Amazon or runs the offline assistant in its own process.
DAEMON_BACKENDS = (Backend.AVS.value, Backend.ASSISTANT.value)
