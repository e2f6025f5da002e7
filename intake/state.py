"""What adapters remember between runs, kept in Redis beside the queue they feed.

- ``Checkpoint``: per (adapter, account, folder) the source's watermark — for
  IMAP the UIDVALIDITY and the highest UID known to be durably enqueued. It is
  written only after the enqueue of everything below it returned, in the same
  Redis (append-only persistence) that holds the queue, so the watermark can
  never be ahead of what was received.
- ``AdapterHealth``: per adapter loop, for operators and ``workers.ops.health``:
  last successful poll and last error; the ``running`` heartbeat and
  ``stopped_at`` (a clean stop); ``restarts`` and ``last_crash`` (a loop that
  died and was started again, see ``intake.supervision``); and, for adapters
  that can see what waits (IMAP), the highest item seen at the source and
  ``waiting_since`` (items above the checkpoint since then), so a reader can
  tell an adapter that is not progressing while mail waits.
- ``AdapterState``: what a reader gets back (``AdapterHealth.states``): one
  loop's record joined with its checkpoint, for every adapter alike — a loop
  named ``<adapter>:<account>/<folder>`` has the checkpoint of that (adapter,
  account, folder) — read as typed facts (``running``, ``behind`` …) by
  ``workers.ops.health`` and as the record itself by ``helpdesk status --json``.
- ``ProcessedLog``: sources the pipeline has finished storing, for adapters
  that act on the source afterwards (flag or move processed mail).

Every store has an in-memory twin.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis


@dataclass(frozen=True)
class Checkpoint:
    uidvalidity: int
    last_uid: int


class CheckpointStore(ABC):
    """Durable watermarks. ``set`` returns only once the value is stored."""

    @abstractmethod
    def get(self, adapter: str, account: str, folder: str) -> Checkpoint | None: ...

    @abstractmethod
    def set(self, adapter: str, account: str, folder: str, checkpoint: Checkpoint) -> None: ...

    @abstractmethod
    def all(self, adapter: str) -> dict[str, dict]: ...


class RedisCheckpointStore(CheckpointStore):
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    def _key(self, adapter: str) -> str:
        return f"{self.namespace}:checkpoints:{adapter}"

    def get(self, adapter: str, account: str, folder: str) -> Checkpoint | None:
        raw = self.client.hget(self._key(adapter), f"{account}/{folder}")
        if raw is None:
            return None
        data = json.loads(raw)
        return Checkpoint(int(data["uidvalidity"]), int(data["last_uid"]))

    def set(self, adapter: str, account: str, folder: str, checkpoint: Checkpoint) -> None:
        value = json.dumps({**asdict(checkpoint), "updated_at": time.time()})
        self.client.hset(self._key(adapter), f"{account}/{folder}", value)

    def all(self, adapter: str) -> dict[str, dict]:
        return {k.decode(): json.loads(v) for k, v in self.client.hgetall(self._key(adapter)).items()}


class MemoryCheckpointStore(CheckpointStore):
    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], Checkpoint] = {}

    def get(self, adapter: str, account: str, folder: str) -> Checkpoint | None:
        return self.values.get((adapter, account, folder))

    def set(self, adapter: str, account: str, folder: str, checkpoint: Checkpoint) -> None:
        self.values[(adapter, account, folder)] = checkpoint

    def all(self, adapter: str) -> dict[str, dict]:
        return {f"{a}/{f}": asdict(c) for (ad, a, f), c in self.values.items() if ad == adapter}


class AdapterHealth:
    """Last success and last error of each adapter instance, for `helpdesk status` and alerts."""

    def __init__(self, client: redis.Redis | None, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.memory: dict[str, dict[str, str]] = defaultdict(dict)

    def _key(self, name: str) -> str:
        return f"{self.namespace}:adapters:{name}"

    def _write(self, name: str, values: dict[str, str]) -> None:
        self.memory[name].update(values)
        if self.client is not None:
            try:
                self.client.hset(self._key(name), mapping=values)
            except redis.RedisError:
                pass  # health reporting must never stop intake

    def success(self, name: str, detail: str = "") -> None:
        self._write(name, {"last_success": f"{time.time():.3f}", "last_detail": detail[:500]})

    def error(self, name: str, error: str) -> None:
        self._write(name, {"last_error": error[:1000], "last_error_at": f"{time.time():.3f}"})

    def beat(self, name: str) -> None:
        """The adapter loop ``name`` is alive now."""
        self._write(name, {"running": f"{time.time():.3f}"})

    def stopped(self, name: str) -> None:
        """The loop was stopped on purpose (its heartbeat ends without it having died)."""
        self._write(name, {"stopped_at": f"{time.time():.3f}"})

    def crashed(self, name: str, detail: str) -> None:
        """The loop died from an exception and is being restarted: count it."""
        values = {"last_crash": detail[:1000], "last_crash_at": f"{time.time():.3f}"}
        self.memory[name]["restarts"] = str(int(self.memory[name].get("restarts", "0")) + 1)
        self.memory[name].update(values)
        if self.client is not None:
            try:
                pipe = self.client.pipeline(transaction=True)
                pipe.hincrby(self._key(name), "restarts", 1)
                pipe.hset(self._key(name), mapping=values)
                pipe.execute()
            except redis.RedisError:
                pass

    def progress(self, name: str, highest_uid: int, waiting_since: float | None) -> None:
        """The highest UID seen in the folder, and since when mail has waited above the checkpoint (None: it has not)."""
        self._write(name, {"highest_uid": str(highest_uid), "waiting_since": f"{waiting_since:.3f}" if waiting_since else ""})

    def read_all(self) -> dict[str, dict[str, str]]:
        if self.client is None:
            return dict(self.memory)
        found = {}
        for key in self.client.scan_iter(match=f"{self.namespace}:adapters:*", count=100):
            found[key.decode().split(":adapters:", 1)[1]] = {k.decode(): v.decode() for k, v in self.client.hgetall(key).items()}
        return found

    def states(self, checkpoints: CheckpointStore) -> dict[str, "AdapterState"]:
        """Every adapter loop that reported, by name, each with its checkpoint when it keeps one."""
        records = self.read_all()
        kinds = {name.partition(":")[0] for name in records}
        marks = {f"{kind}:{where}": mark for kind in sorted(kinds) for where, mark in checkpoints.all(kind).items()}
        return {name: AdapterState(name, record, marks.get(name)) for name, record in sorted(records.items())}


@dataclass(frozen=True)
class AdapterState(Mapping[str, Any]):
    """One adapter loop as its health record and checkpoint tell it.

    As a mapping it is the record, with the checkpoint (when there is one) under
    ``checkpoint``: the form ``helpdesk status --json`` shows and ``from_dict``
    reads back. Its properties are the facts a judge needs; a time never
    recorded is ``0.0``.
    """

    name: str
    record: Mapping[str, str] = field(default_factory=dict)  # as ``AdapterHealth`` wrote it (never a ``checkpoint`` key)
    checkpoint: Mapping[str, Any] | None = None

    @classmethod
    def from_dict(cls, name: str, info: Mapping[str, Any]) -> "AdapterState":
        if isinstance(info, AdapterState):
            return info
        checkpoint = info.get("checkpoint") or None
        return cls(name, {k: v for k, v in info.items() if k != "checkpoint"}, checkpoint)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.record) if self.checkpoint is None else {**self.record, "checkpoint": dict(self.checkpoint)}

    def __getitem__(self, key: str) -> Any:
        if key == "checkpoint" and self.checkpoint is not None:
            return self.checkpoint
        return self.record[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.record
        if self.checkpoint is not None:
            yield "checkpoint"

    def __len__(self) -> int:
        return len(self.record) + (self.checkpoint is not None)

    def _time(self, key: str) -> float:
        return _number(self.record.get(key))

    @property
    def running(self) -> float:
        """Its last heartbeat."""
        return self._time("running")

    @property
    def stopped_at(self) -> float:
        return self._time("stopped_at")

    @property
    def stopped_on_purpose(self) -> bool:
        """Stopped cleanly after its last heartbeat (not died)."""
        return self.stopped_at >= self.running > 0

    @property
    def last_success(self) -> float:
        return self._time("last_success")

    @property
    def last_error_at(self) -> float:
        return self._time("last_error_at")

    @property
    def last_error(self) -> str:
        return str(self.record.get("last_error") or "")

    @property
    def last_crash_at(self) -> float:
        return self._time("last_crash_at")

    @property
    def last_crash(self) -> str:
        return str(self.record.get("last_crash") or "")

    @property
    def restarts(self) -> int:
        return int(self._time("restarts"))

    @property
    def waiting_since(self) -> float:
        """Since when items have waited above the checkpoint (0.0: none wait, or the adapter cannot tell)."""
        return self._time("waiting_since")

    @property
    def behind(self) -> int:
        """How many items the source holds above the checkpoint (0 when the adapter cannot tell)."""
        seen = int(self._time("highest_uid"))
        done = int(_number((self.checkpoint or {}).get("last_uid")))
        return max(0, seen - done)

    @property
    def checkpoint_moved_at(self) -> float:
        """When the checkpoint last moved (a long first sync moves it batch by batch)."""
        return _number((self.checkpoint or {}).get("updated_at"))


def _number(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


TELLS_STORED = frozenset({"imap"})  # adapters that read the ProcessedLog (IMAP flags or moves stored mail)


class ProcessedLog:
    """Sources whose messages are stored (so their tickets exist), per adapter and account."""

    MAX = 100_000

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    def _key(self, adapter: str, account: str) -> str:
        return f"{self.namespace}:processed:{adapter}:{account}"

    def record(self, source: str) -> bool:
        """The generic "stored" signal: note ``source`` for its adapter when that adapter acts on stored mail.

        A source reads ``<adapter>:<account>/<where>``; adapters that flag or move what is stored (``TELLS_STORED``)
        take their own items; for others nothing is kept. True when noted."""
        adapter, _, rest = source.partition(":")
        account = rest.partition("/")[0]
        if adapter not in TELLS_STORED or not account:
            return False
        self.add(adapter, account, source)
        return True

    def add(self, adapter: str, account: str, source: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(self._key(adapter, account), source)
        pipe.ltrim(self._key(adapter, account), -self.MAX, -1)
        pipe.execute()

    def take(self, adapter: str, account: str, limit: int = 500) -> list[str]:
        key = self._key(adapter, account)
        pipe = self.client.pipeline(transaction=True)
        pipe.lrange(key, 0, limit - 1)
        pipe.ltrim(key, limit, -1)
        items, _ = pipe.execute()
        return [item.decode() for item in items]

    def give_back(self, adapter: str, account: str, sources: list[str]) -> None:
        if sources:
            self.client.lpush(self._key(adapter, account), *reversed(sources))
