"""Runs the asyncio client on a private event-loop thread so the sync client shares its code.

A KeyboardInterrupt in the calling thread cancels the coroutine (which, for job helpers, cancels
the job on the server), even one the loop has not started yet, and waits briefly for that clean-up
before re-raising.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


# How long the calling thread sleeps at a time while it waits for the loop. A Ctrl-C is a
# process-wide signal that the kernel may deliver to any thread (the loop's, gRPC's); CPython then
# only flags it, and a main thread blocked in an untimed lock wait would not run the handler until
# the call ended (a hung Watch: never). Timed slices let it raise KeyboardInterrupt within one slice.
_WAIT_SLICE_SECONDS = 0.1


def _interruptible_result(future: concurrent.futures.Future[T]) -> T:
    while True:
        try:
            return future.result(timeout=_WAIT_SLICE_SECONDS)
        except concurrent.futures.TimeoutError:
            continue


class LoopThread:
    """One daemon thread running one event loop."""

    def __init__(self, cancel_grace: float = 10.0) -> None:
        self.cancel_grace = cancel_grace
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="viarte-sdk-loop", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("the sync client cannot be used from its own event loop")
        holder: dict[str, asyncio.Task[Any]] = {}

        async def main() -> T:
            task = asyncio.current_task()
            assert task is not None
            holder["task"] = task
            return await coro

        future = asyncio.run_coroutine_threadsafe(main(), self.loop)
        try:
            return _interruptible_result(future)
        except KeyboardInterrupt:
            self._cancel(holder)
            raise

    def _cancel(self, holder: dict[str, asyncio.Task[Any]]) -> None:
        # Cancelling the task delivers CancelledError to the coroutine, whose handlers (e.g.
        # "cancel the job on the server") then run; wait for them, bounded by cancel_grace.
        # A task cancelled before its first step never enters the coroutine (nor its handlers:
        # a `wait` would leave its job running), so one the loop has not started yet runs to its
        # first await before it is cancelled. The loop runs callbacks in the order they were
        # queued: the one creating the task precedes `arm`, so the task's first step precedes
        # `arm`'s second turn.
        done = threading.Event()

        def arm() -> None:
            task = holder.get("task")
            if task is None:
                self.loop.call_soon(arm)
                return
            task.add_done_callback(lambda _t: done.set())
            task.cancel()

        self.loop.call_soon_threadsafe(arm)
        done.wait(self.cancel_grace)

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        """A sync iterator over an async iterator living on the loop."""

        async def step() -> T:
            return await agen.__anext__()

        try:
            while True:
                try:
                    item = self.run(step())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and self.loop.is_running():
                try:
                    self.run(aclose())
                except (RuntimeError, KeyboardInterrupt):
                    pass

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()

