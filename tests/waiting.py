"""Waiting in tests for what can be awaited, instead of sleeping.

``wait_until_drained(broker)`` returns once the worker has finished everything on the
queues: a test that checks "nothing happened twice" waits for the repeat to be
processed, not for an arbitrary second to pass.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import QueueJoinTimeout

from config.queues import QUEUES


def wait_until_drained(broker: RedisBroker, queues: Sequence[str] = QUEUES, timeout: float = 30.0) -> None:
    """Return once no message is left on ``queues``; AssertionError naming the busy queues after ``timeout``.

    A message counts until a worker of this ``broker`` has acknowledged it: waiting in its
    queue, held (prefetched or running) by the worker, or waiting out a retry delay. A
    message enqueues its consequences before it is acknowledged, so the queues are passed
    over until one pass finds all of them empty (dramatiq's ``join``, meant for tests).
    """
    deadline = time.monotonic() + timeout
    while busy := [queue for queue in queues if broker.do_qsize(queue)]:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise QueueJoinTimeout(busy[0])
            broker.join(busy[0], interval=50, timeout=max(1, int(left * 1000)))
        except QueueJoinTimeout:
            raise AssertionError(f"queues not drained within {timeout:g} s: {busy}") from None
