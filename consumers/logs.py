"""Structured logs: one JSON object a line on stderr, with whatever `extra` a call adds."""

from __future__ import annotations

import logging
import sys
import time
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


# What a start logs as a warning while its consumer group's coordinator is still being found, by logger and the
# message's start: on a broker that has just started (or a loaded one) the first requests to the coordinator may
# time out or find it moving, and aiokafka marks it dead and looks again. Logged at INFO during the first
# START_WINDOW seconds of the process; afterwards the same message is a warning again, as it then means a broker
# went away.
WHILE_STARTING = {"aiokafka.consumer.group_coordinator": ("Marking the coordinator dead",)}
START_WINDOW = 60.0


class _Starting(logging.Filter):
    """Logs one of WHILE_STARTING's messages at INFO until `until` (time.monotonic())."""

    def __init__(self, starts: tuple[str, ...], until: float):
        super().__init__()
        self.starts, self.until = starts, until

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno > logging.INFO
            and time.monotonic() < self.until
            and record.getMessage().startswith(self.starts)
        ):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


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
    until = time.monotonic() + START_WINDOW
    for name, starts in WHILE_STARTING.items():
        logger = logging.getLogger(name)
        logger.filters[:] = [each for each in logger.filters if not isinstance(each, _Starting)]
        logger.addFilter(_Starting(starts, until))
