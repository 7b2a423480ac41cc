"""Secrets never reach a log: protocol loggers are held above DEBUG and every avsd handler redacts tokens.

Why both:
- ``hpack`` logs every header it encodes or decodes at DEBUG, ``authorization: Bearer Atza|...`` included, and
  also the Huffman-coded header block, which no pattern can redact. A program that embeds avsd (or the emulator)
  and sets the root logger to DEBUG printed bearer tokens. So the HTTP/2 stack's loggers (``QUIETED_LOGGERS``)
  are set to WARNING when avsd builds an HTTP client or the emulator starts, unless the program set their level
  itself (WARNING, not INFO: an explicit INFO would let httpx's per-request INFO lines through a root logger the
  program keeps at WARNING). avsd's handlers drop every protocol logger's DEBUG records whatever its level.
- :class:`RedactingFilter` rewrites any record that reaches an avsd handler: ``Authorization``/``Bearer``/
  ``Basic`` values, ``access_token``/``refresh_token``/``client_secret``/``device_code`` values (JSON, form or
  ``key=value``), ``x-amz-access-token`` values and bare ``Atza|``/``Atzr|`` strings, in the message and in the
  formatted traceback.
"""

from __future__ import annotations

import logging
import re

REDACTED = "<redacted>"

# Loggers of HTTP/2 and HTTP libraries that can print headers or bodies at DEBUG.
PROTOCOL_LOGGERS = (
    "hpack",
    "h2",
    "hyperframe",
    "httpcore",
    "httpx",
    "h11",
    "urllib3",
    "requests",
    "aiohttp",
    "websockets",
    "twilio.http_client",
)
# The HTTP/2 stack avsd itself drives; their levels are raised (the others are only filtered at avsd's handlers).
QUIETED_LOGGERS = ("hpack", "h2", "hyperframe", "httpcore", "httpx")

_VALUE = r"[^\s'\",;&}\])<]+"  # up to a delimiter; never '<' so <redacted> is not redacted again
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # key: value / key=value / "key": "value" / (b'key', b'value') for header, JSON and form field names that
    # carry secrets; a Bearer/Basic scheme word is kept.
    (
        re.compile(
            r"(?i)(\b(?:authorization|x-amz-access-token|access_token|refresh_token|client_secret|device_code"
            r"|id_token|api_key|auth_token)['\"]?\s*[:=,]\s*(?:(?-i:b)(?=['\"]))?['\"]?(?:(?:bearer|basic)\s+)?)"
            r"(?!(?:bearer|basic)\s|(?-i:b)?['\"])"  # idempotent: never re-redact b'Bearer <redacted>'
            + _VALUE
        ),
        rf"\1{REDACTED}",
    ),
    # Bearer / Basic credentials anywhere else (exception text, reprs).
    (re.compile(r"(?i)\b(bearer|basic)(\s+)" + _VALUE), rf"\1\2{REDACTED}"),
    # LWA tokens on their own.
    (re.compile(r"Atz[ar]\|" + _VALUE), REDACTED),
)


def redact(text: str) -> str:
    """``text`` with every secret replaced by ``<redacted>``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _is_protocol_logger(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in PROTOCOL_LOGGERS)


class RedactingFilter(logging.Filter):
    """For every handler avsd installs: drops protocol loggers' DEBUG records and redacts the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO and _is_protocol_logger(record.name):
            return False
        if getattr(record, "avsd_redacted", False):  # a second protected handler sees the same record
            return True
        record.avsd_redacted = True
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def protect(handler: logging.Handler) -> logging.Handler:
    """Add the redacting filter to ``handler`` (once) and return it."""
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())
    return handler


def quiet_protocol_loggers() -> None:
    """Hold the HTTP/2 stack's loggers at WARNING unless the program chose a level for them itself."""
    for name in QUIETED_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def protect_root_handlers() -> None:
    """For entry points that configure the root logger (``logging.basicConfig``): protect its handlers."""
    for handler in logging.getLogger().handlers:
        protect(handler)
    quiet_protocol_loggers()


__all__ = [
    "PROTOCOL_LOGGERS",
    "QUIETED_LOGGERS",
    "REDACTED",
    "RedactingFilter",
    "protect",
    "protect_root_handlers",
    "quiet_protocol_loggers",
    "redact",
]
