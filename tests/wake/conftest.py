"""Fixtures for the wake-word tests (helpers live in helpers.py)."""

from tests.wake.helpers import small_corpus

__all__ = ["small_corpus"]
