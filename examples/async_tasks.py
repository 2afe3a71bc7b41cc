"""Coroutine tasks (async def), to ask whether rewriting tasks with async/await pays.

    make bench POOL=asyncio TASK=examples.async_tasks:call_service ARGS='[0.2]'   # awaits: overlaps on one loop
    make bench POOL=threads TASK=examples.async_tasks:call_service ARGS='[0.2]'   # asyncio.run per task, marked
    make bench POOL=asyncio TASK=examples.async_tasks:blocking_call ARGS='[0.2]'  # time.sleep in it: LOOP BLOCKED
    make advise TASK=examples.async_tasks:call_service                           # the advisor adds the asyncio pool

`call_service` waits as an async client does (asyncio.sleep stands in for an awaited request); `blocking_call`
is the classic mistake, a blocking call inside a coroutine, which holds the event loop and every task on it.
"""
from __future__ import annotations

import asyncio
import time


async def call_service(duration: float = 0.2) -> dict:
    """An awaited call to a slow service: the loop runs other tasks meanwhile."""
    await asyncio.sleep(duration)
    return {"waited_s": duration}


async def blocking_call(duration: float = 0.2) -> dict:
    """The same wait made with a blocking call: the coroutine never yields, so the loop stops for `duration`."""
    time.sleep(duration)  # a blocking call in a coroutine: the lesson, not a slip
    return {"waited_s": duration}
