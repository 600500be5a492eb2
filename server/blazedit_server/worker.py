"""The engine worker: one thread owns the Engine and runs requests one at a time, first come first served.

Requests wait in a bounded FIFO queue (beyond `max_queue` waiting: OverloadedError, HTTP 503). Each request is
a `Job`: the worker thread iterates the engine's stream and hands every item to the job's asyncio queue on the
event loop. Cancelling a job (client gone, WebSocket cancel frame) drops it from the queue, or sets the event
the engine checks every verification step, so a running request stops within one step. An EngineError
poisons the worker: the request fails, every waiting request fails, and `on_poison` asks the process to exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator

from blazedit_client.errors import BlazeditError, CancelledError, EngineError, OverloadedError

from blazedit_server.engine.runner import Engine, Finished, Started, Step

log = logging.getLogger(__name__)

Item = Started | Step | Finished
EngineCall = Callable[[Engine, threading.Event], Iterator[Item]]


class Job:
    """One request's run on the engine, produced on the worker thread, consumed on the event loop."""

    def __init__(self, call: EngineCall) -> None:
        self.call = call
        self.cancel_event = threading.Event()
        self.submitted = time.monotonic()
        self.started: float | None = None
        self._loop = asyncio.get_running_loop()
        self._items: asyncio.Queue[Item | BlazeditError] = asyncio.Queue()

    @property
    def queue_s(self) -> float:
        return (self.started or time.monotonic()) - self.submitted

    def post(self, item: Item | BlazeditError) -> None:
        """Called on the worker thread."""
        with contextlib.suppress(RuntimeError):  # a closed event loop: nobody is listening any more
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)

    async def next(self) -> Item:
        """The next engine item; raises the request's error."""
        item = await self._items.get()
        if isinstance(item, BlazeditError):
            raise item
        return item

    async def items(self) -> AsyncIterator[Item]:
        """Every remaining item, up to and including `Finished`."""
        while True:
            item = await self.next()
            yield item
            if isinstance(item, Finished):
                return


class Worker:
    """Owns the Engine and the thread that runs it."""

    def __init__(self, engine: Engine, *, max_queue: int, on_poison: Callable[[], None]) -> None:
        self.engine = engine
        self.max_queue = max_queue
        self.poisoned = False
        self._on_poison = on_poison
        self._waiting: deque[Job] = deque()
        self._running: Job | None = None
        self._stopping = False
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._serve, name="blazedit-engine", daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self.poisoned

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> Job | None:
        return self._running

    @property
    def busy(self) -> bool:
        return self._running is not None

    def start(self) -> None:
        self._thread.start()

    def submit(self, call: EngineCall) -> Job:
        """Queue a request; OverloadedError when the queue is full, EngineError once the engine failed or the
        daemon began to stop."""
        job = Job(call)
        with self._lock:
            if self.poisoned:
                raise EngineError(
                    "the engine failed and the daemon is shutting down; retry after its restart"
                )
            if self._stopping:
                raise EngineError("the daemon is shutting down; retry after its restart")
            if len(self._waiting) >= self.max_queue:
                raise OverloadedError(f"{len(self._waiting)} requests are already waiting; retry shortly")
            self._waiting.append(job)
            self._lock.notify()
        return job

    def cancel(self, job: Job) -> None:
        """Stop a job: dropped if still waiting (it then ends with CancelledError), else stopped by the engine
        at its next verification step."""
        job.cancel_event.set()
        with self._lock:
            if job in self._waiting:
                self._waiting.remove(job)
                job.post(CancelledError("cancelled while waiting in the queue"))

    def stop(self, timeout: float = 30.0) -> None:
        """Fail the waiting jobs, stop the running one, and wait for the thread."""
        with self._lock:
            self._stopping = True
            self._fail_waiting(CancelledError("the daemon is shutting down"))
            if self._running is not None:
                self._running.cancel_event.set()
            self._lock.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _serve(self) -> None:
        while (job := self._take()) is not None:
            self._run(job)
            with self._lock:
                self._running = None

    def _take(self) -> Job | None:
        with self._lock:
            while not self._waiting and not self._stopping and not self.poisoned:
                self._lock.wait()
            if self._stopping or self.poisoned:
                return None
            self._running = self._waiting.popleft()
            return self._running

    def _run(self, job: Job) -> None:
        job.started = time.monotonic()
        try:
            for item in job.call(self.engine, job.cancel_event):
                if isinstance(item, Finished):  # the engine cannot know how long the request waited
                    item.timings = item.timings.model_copy(update={"queue_s": job.queue_s})
                job.post(item)
        except EngineError as exc:
            self._poison(exc)  # unhealthy before anyone hears of the failure
            job.post(exc)
            self._on_poison()
        except BlazeditError as exc:
            job.post(exc)
        except Exception as exc:  # a bug, not a bad request: report it, keep serving
            log.exception("engine request failed")
            job.post(BlazeditError(f"internal error: {exc.__class__.__name__}: {exc}"))

    def _poison(self, exc: EngineError) -> None:
        log.critical("engine failed, the daemon stops so that its supervisor restarts it: %s", exc.message)
        with self._lock:
            self.poisoned = True
            self._fail_waiting(
                EngineError("the engine failed while this request waited; retry after restart")
            )

    def _fail_waiting(self, exc: BlazeditError) -> None:
        while self._waiting:
            self._waiting.popleft().post(exc)
