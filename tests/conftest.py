"""Shared fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_avsd_logging() -> Iterator[None]:
    """Tests that run ``avsd.cli.main`` in-process get ``setup_logging``: the ``avsd`` logger stops propagating
    and gets its own handler. Put it back, so a later test's ``caplog`` still sees avsd's records."""
    logger = logging.getLogger("avsd")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved
