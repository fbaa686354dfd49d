"""serving/timers.py: BentoML's per-request timeout timer is cancelled once the response starts,
so a request is not held in memory for the whole traffic timeout (docs/benchmarks.md "Memory")."""

from __future__ import annotations

import asyncio

from serving import timers


class TimeoutMiddleware:  # the shape of BentoML's, for the unit tests
    def _set_timer_out(self, waiter: asyncio.Future) -> None:
        if not waiter.done():
            waiter.set_exception(asyncio.TimeoutError)


def _recording(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    """Record every handle call_later returns (outside the wrapper under test)."""
    handles: list[asyncio.TimerHandle] = []
    inner = loop.call_later

    def call_later(*args, **kwargs):
        h = inner(*args, **kwargs)
        handles.append(h)
        return h

    loop.call_later = call_later
    return handles


def test_timeout_timer_is_cancelled_when_its_waiter_is_done():
    async def main():
        loop = asyncio.get_running_loop()
        assert timers.install_on_running_loop()
        assert not timers.install(loop)  # once per loop
        waiter = loop.create_future()
        handle = loop.call_later(60, TimeoutMiddleware()._set_timer_out, waiter)
        other = loop.call_later(60, lambda: None)
        assert not handle.cancelled()
        waiter.set_result(None)
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
        assert handle.cancelled()
        assert not other.cancelled()  # any other timer is left alone
        other.cancel()

    asyncio.run(main())


def test_a_request_that_times_out_still_gets_its_timeout():
    async def main():
        loop = asyncio.get_running_loop()
        timers.install(loop)
        waiter = loop.create_future()
        loop.call_later(0, TimeoutMiddleware()._set_timer_out, waiter)
        try:
            await waiter
        except TimeoutError:
            return True
        return False

    assert asyncio.run(main())


def test_without_a_running_loop_nothing_is_installed():
    assert timers.install_on_running_loop() is False


def test_bentoml_timeout_middleware_timer_is_cancelled_after_the_response():
    """Against the installed BentoML: if it renames or reshapes its middleware, this says so."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware as BentoTimeout

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main():
        loop = asyncio.get_running_loop()
        handles = _recording(loop)
        timers.install(loop)
        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b""}

        await BentoTimeout(app, timeout=60)({"type": "http"}, receive, send)
        ours = [h for h in handles if h.when() > loop.time() + 30]
        return sent, ours

    sent, ours = asyncio.run(main())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert len(ours) == 1 and ours[0].cancelled()
