"""Structured logs for the gateway.

The gateway logs to the ``rtpcore.gateway`` logger with an ``event`` name and
fields in ``extra`` (``call_sid``, ``digit``, ``codec`` ...). ``configure``
sends them to stderr, one JSON object per line (``format = "json"``, for log
pipelines) or as ``message key=value ...`` text; applications that set up
logging themselves can skip it and read the same fields off the records.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from rtpcore.gateway.config import LoggingSettings

__all__ = ["JSONFormatter", "TextFormatter", "configure"]

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JSONFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``time level message key=value ...``, for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _fields(record).items() if k != "event")
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp}.{int(record.msecs):03d} {record.levelname.lower():7} " \
               f"{record.getMessage()}{' ' + extras if extras else ''}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(settings: LoggingSettings, stream: Any = None) -> logging.Handler:
    """Send the ``rtpcore`` loggers' records to ``stream`` (stderr) in the
    configured format; returns the handler (remove it to undo)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if settings.format == "json" else TextFormatter())
    logger = logging.getLogger("rtpcore")
    logger.addHandler(handler)
    logger.setLevel(settings.level.upper())
    logger.propagate = False
    return handler
