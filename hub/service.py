"""The shape of every long-running part of the hub (relay, broker admin, revocation
sync): an async context manager that owns one named background task."""

from __future__ import annotations

import asyncio
import logging
from typing import Self

log = logging.getLogger("hub.service")


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` passes; True if it was set.

    ``asyncio.wait_for`` on Python 3.11 can swallow a cancellation that arrives as the
    event is set, which leaves a service's task running after it was stopped.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


class BackgroundService:
    """Starts ``_run`` as a named task on enter; cancels and awaits it on exit.
    Not re-entrant. Subclasses may hook ``_starting`` and ``_stopped``."""

    _task_name = "hub-service"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    def _starting(self) -> None:
        """Called on enter, in the event loop, before the task starts."""

    def _stopped(self) -> None:
        """Called on exit, after the task has ended."""

    async def __aenter__(self) -> Self:
        if self._task is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._starting()
        self._task = asyncio.create_task(self._run(), name=self._task_name)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            # Cancel until it ends: a task may absorb one cancellation in library code.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            if not task.cancelled() and task.exception() is not None:
                log.error("%s ended with an error", self._task_name, exc_info=task.exception())
        self._stopped()
