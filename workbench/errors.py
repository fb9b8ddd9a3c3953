"""Errors users are expected to see. Each message is one line that says what to do."""

from __future__ import annotations


class WorkbenchError(RuntimeError):
    """Base of every expected, user-facing failure."""


class MissingToolError(WorkbenchError):
    """A required program (java, mvn) is not installed."""


class BrokerUnavailable(WorkbenchError):
    """No Kafka broker answered at the configured bootstrap address."""


class DataMissingError(WorkbenchError):
    """A data set Workbench reads (e.g. MovieLens) is not installed."""
