"""Running a worker process: start dramatiq's Worker, stop on a signal or when the queues drain."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from workers.queue_state import is_idle, read_queue, recover_stranded

IDLE_CHECKS = 3  # consecutive empty readings before an --until-idle worker stops
POLL_SECONDS = 0.2


def run_worker(
    broker: RedisBroker,
    queues: tuple[str, ...],
    *,
    threads: int,
    until_idle: bool = False,
    heartbeat_timeout_ms: int = 60_000,
    on_poll: Callable[[int], None] | None = None,
    stop_event: threading.Event | None = None,
) -> None:
    """Process ``queues`` until SIGINT/SIGTERM, ``stop_event``, or — with ``until_idle`` — until
    every queue is empty and nothing is delayed or in flight anywhere.

    ``on_poll`` is called with the number of unfinished messages (for progress bars).
    """
    stop = stop_event or threading.Event()
    install_signal_handlers(stop)
    recover_stranded(broker, queues)
    worker = dramatiq.Worker(broker, worker_threads=threads, queues=set(queues), worker_timeout=100)
    worker.start()
    try:
        idle_readings = 0
        last_recovery = time.monotonic()
        while not stop.wait(POLL_SECONDS):
            if not until_idle and on_poll is None:
                continue
            states = [read_queue(broker.client, broker.namespace, q, heartbeat_timeout_ms) for q in queues]
            if on_poll is not None:
                on_poll(sum(s.unfinished for s in states))
            if any(s.stranded for s in states) and time.monotonic() - last_recovery > 5:
                recover_stranded(broker, queues)
                last_recovery = time.monotonic()
            idle_readings = idle_readings + 1 if is_idle(states) else 0
            if until_idle and idle_readings >= IDLE_CHECKS:
                worker.join()
                break
    finally:
        worker.stop(timeout=30_000)


def install_signal_handlers(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
