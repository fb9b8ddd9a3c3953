"""The feature job's intake: every record passes the shared validation before any window sees it.

The deserializer decodes and checks each record once. A malformed record
becomes a :class:`Malformed` marker instead of an exception, so quixstreams
keeps going; the job's first step sends it to ``<topic>.dlq`` with its reason
and original bytes (once per source position, durable before the job can
commit past it) and drops it. Feature values are computed from valid events
only, exactly as the backfill computes them from a validated history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.streams.events import validate

if TYPE_CHECKING:
    from workbench.streams.validation import DeadLetters


@dataclass(frozen=True)
class Malformed:
    reason: str
    raw: bytes | None


def deserializer(max_bytes: int) -> Any:
    """A quixstreams value deserializer: an event dict, or a Malformed marker."""
    from quixstreams.models.serializers import Deserializer

    class _Validating(Deserializer):
        def __call__(self, value: bytes, ctx: Any = None) -> Any:
            event, reason = validate(value, max_bytes)
            return event if reason is None else Malformed(reason, value)

    return _Validating()


class Intake:
    """Counts valid and malformed records and dead-letters the malformed ones."""

    def __init__(self, dead_letters: DeadLetters | None) -> None:
        self.dead_letters = dead_letters
        self.valid = 0
        self.malformed: dict[str, int] = {}

    def accept(self, value: Any) -> bool:
        """The job's first step (a filter): True for an event, False (after dead-lettering) otherwise."""
        if not isinstance(value, Malformed):
            self.valid += 1
            return True
        from quixstreams import message_context

        ctx = message_context()
        if self.dead_letters is None:
            sent = True
        else:
            sent = self.dead_letters.send(value.raw, value.reason, partition=ctx.partition, offset=ctx.offset)
            # durable before quixstreams can commit past this record (malformed records are rare)
            self.dead_letters.flush()
        if sent:
            self.malformed[value.reason] = self.malformed.get(value.reason, 0) + 1
        return False
