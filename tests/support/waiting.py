"""Bounded waits for a condition: the one way a test waits for something that happens in another process.

A wait that runs out fails with what did not happen, never with a bare timeout or by falling through to an
assertion about a half-finished state. `what` may be a function, called only on failure, so the message can
show the last state seen (the status a referral stayed at, the services that left spans).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Describe = str | Callable[[], str]


def _failure(what: Describe, timeout: float) -> AssertionError:
    said = what() if callable(what) else what
    return AssertionError(f"{said} did not happen within {timeout:g} s")


async def wait_until(condition: Callable[[], bool | Awaitable[bool]], *, timeout: float, every: float = 0.5,
                     what: Describe = "the condition") -> float:
    """Check `condition` (sync or async) every `every` seconds until it holds; returns the seconds it took, or
    fails saying what did not happen within `timeout`."""
    start = time.monotonic()
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise _failure(what, timeout)
        await asyncio.sleep(every)


def wait_until_sync(condition: Callable[[], bool], *, timeout: float, every: float = 0.5,
                    what: Describe = "the condition") -> float:
    """`wait_until` for a test with no event loop (one driving docker and kubectl): blocks the thread."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise _failure(what, timeout)
        time.sleep(every)
    return time.monotonic() - start
