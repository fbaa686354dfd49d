"""Cancel BentoML's per-request timeout timer once the response has started.

BentoML 1.4's ``TimeoutMiddleware`` calls ``loop.call_later(timeout, self._set_timer_out, waiter)``
for every request and never cancels the handle: each request's ``TimerHandle``, its ``waiter``
future and a copy of its context (with the request's OpenTelemetry span when tracing is on) stay
on the event loop until the timeout expires, answered or not. That was the whole of the service's
memory growth under load (373 -> 462 MB over 18,000 requests, flat at the high-water mark of
request rate x timeout afterwards; docs/benchmarks.md "Memory", experiments/bentoml_timer_repro.py).

``install`` wraps ``call_later`` on the worker's running loop (an instance attribute: public
asyncio API, no BentoML import): a timer whose callback is ``TimeoutMiddleware._set_timer_out`` is
cancelled as soon as its waiter future is done, which is when the response starts. That is what
the timer is for: ``_set_timer_out`` does nothing once the waiter is done, so no timeout is lost.
Any other ``call_later`` passes through untouched, and if BentoML renames or fixes the middleware
the wrapper simply never matches. A cancelled handle drops its callback and arguments at once;
asyncio removes cancelled handles from its heap in bulk.
"""

from __future__ import annotations

import asyncio
from typing import Any

TIMER_CALLBACK = "_set_timer_out"
TIMER_OWNER = "TimeoutMiddleware"


def _is_timeout_timer(callback: Any, args: tuple[Any, ...]) -> bool:
    owner = getattr(callback, "__self__", None)
    return (
        getattr(callback, "__name__", None) == TIMER_CALLBACK
        and type(owner).__name__ == TIMER_OWNER
        and len(args) == 1
        and isinstance(args[0], asyncio.Future)
    )


def install(loop: asyncio.AbstractEventLoop) -> bool:
    """Wrap ``loop.call_later`` once; True if this call installed it."""
    if getattr(loop.call_later, "_cancels_timeout_timers", False):
        return False
    original = loop.call_later

    def call_later(delay: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        handle = original(delay, callback, *args, **kwargs)
        if _is_timeout_timer(callback, args):
            waiter: asyncio.Future = args[0]
            waiter.add_done_callback(lambda _f: handle.cancel())
        return handle

    call_later._cancels_timeout_timers = True  # type: ignore[attr-defined]
    loop.call_later = call_later  # type: ignore[method-assign]
    return True


def install_on_running_loop() -> bool:
    """``install`` on the running loop of this thread; False when there is none."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return install(loop)
