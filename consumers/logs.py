"""Structured logs: one JSON object a line on stderr, with whatever `extra` a call adds."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

import orjson

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class _Stderr(logging.StreamHandler):
    """A handler on whatever `sys.stderr` is when a record is written, not the stream it was when logging was
    configured: a command run inside another program (a test runner, an embedding application) that swaps stderr
    and closes the old one still logs, instead of failing on a closed file for every record after."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


# What a healthy start logs as a warning although nothing is wrong, by logger: each is logged at DEBUG instead.
NORMAL_AT_START = {
    # FastStream says so for every subscriber of a broker that may not create topics (allow_auto_create_topics off,
    # so that no metadata request of ours makes one): serve creates its topics itself before its consumer starts
    # (consumers.topics.ensure_topics), and reporting reads the one serve made.
    "medledger.kafka": ("Auto create topics is disabled. Make sure the topics exist.",),
}


class _Normal(logging.Filter):
    """Logs one of NORMAL_AT_START's messages at DEBUG, shown only where the logger's level lets DEBUG through."""

    def __init__(self, logger: logging.Logger, messages: tuple[str, ...]):
        super().__init__()
        self.logger, self.messages = logger, messages

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and record.getMessage() in self.messages:
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            return self.logger.isEnabledFor(logging.DEBUG)
        return True


def configure(level: str = "INFO") -> None:
    handler = _Stderr()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # alembic names each of its autogenerate plugins at INFO whenever its commands load: nothing medledger uses.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    for name, messages in NORMAL_AT_START.items():
        logger = logging.getLogger(name)
        logger.filters[:] = [each for each in logger.filters if not isinstance(each, _Normal)]
        logger.addFilter(_Normal(logger, messages))
