"""A logger's records for one block, kept by the tests that check what is logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class LogRecords(logging.Handler):
    """Every record handed to it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def assert_clean(self, at_most: int) -> None:
        """At most ``at_most`` records, each one line, none with a traceback."""
        assert len(self.records) <= at_most, [r.getMessage() for r in self.records]
        for record in self.records:
            text = self.format(record)
            assert record.exc_info is None and "Traceback" not in text, text
            assert "\n" not in record.getMessage(), record.getMessage()


@contextmanager
def captured(logger_name: str, level: int = logging.DEBUG) -> Iterator[LogRecords]:
    """The records ``logger_name`` (and its children) log at ``level`` and above in the
    block; the logger's level is restored after."""
    handler, logger = LogRecords(), logging.getLogger(logger_name)
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)
