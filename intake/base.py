"""Boundaries of the intake side: where adapters put what they read.

An adapter reads a source (a mailbox, a folder, an API), turns each item into
an ``InboundMessage`` — or a ``Rejected`` record when it cannot — and hands it
to a ``Sink``. Only when the sink returns may the adapter move its source
watermark. Every boundary has an in-memory twin for tests and the demo.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from intake.errors import MessageDecodeError
from intake.message import Channel, InboundMessage


class Rejected(BaseModel):
    """Raw input that could not become a message, kept visibly with its reason (quarantine)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    channel: Channel
    key: str = Field(min_length=1, max_length=200, description="stable identity: sha256 of the raw input")
    reason: str = Field(max_length=100)
    detail: str = Field("", max_length=4000)
    source: str = Field("", max_length=2000)
    raw_ref: str | None = None
    received_at: datetime

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, payload: str | bytes) -> "Rejected":
        try:
            return cls.model_validate_json(payload)
        except ValidationError as exc:
            raise MessageDecodeError(f"not a Rejected record: {exc.errors()[0]['msg']}") from exc


class Sink(ABC):
    """Takes messages from adapters and makes them durable.

    Delivery semantics: ``put`` and ``reject`` return only after the item is
    durably queued (or raise ``SinkError``, and the adapter must not advance
    its watermark). The same item may be put more than once — after a restart
    an adapter re-reads an overlap window — and downstream dedupe absorbs it.

    An adapter that reads many items at once (a backfill, an import) wraps them in
    ``with sink.batched():``: what it puts inside is queued together when the block
    ends (or when a batch is full), and the block returns only after all of it is
    durably queued; the adapter moves its watermark after the block, not inside it.
    """

    @abstractmethod
    def put(self, message: InboundMessage) -> None:
        """Queue one message for processing."""

    def put_many(self, messages: Sequence[InboundMessage]) -> None:
        """Queue several messages; returns once all are durably queued."""
        for message in messages:
            self.put(message)

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Puts inside the block may be queued together, when it ends (see the class's docstring)."""
        yield

    @abstractmethod
    def reject(self, rejected: Rejected) -> None:
        """Queue one quarantine record."""


class MemorySink(Sink):
    """In-memory twin of the queue sink: keeps what it was given, in order."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.rejected: list[Rejected] = []

    def put(self, message: InboundMessage) -> None:
        self.messages.append(message)

    def reject(self, rejected: Rejected) -> None:
        self.rejected.append(rejected)
