"""The sync resources are generated from the async ones: same methods, same signatures, same
docstrings, and each call really runs on the client's loop thread."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator

import pytest

from viarte._sync import LoopThread
from viarte.client import (
    ApiKeys,
    Assets,
    Assistant,
    AsyncApiKeys,
    AsyncAssets,
    AsyncAssistant,
    AsyncAuth,
    AsyncGeneration,
    AsyncJobs,
    AsyncProjects,
    AsyncRender,
    Auth,
    Generation,
    Jobs,
    Projects,
    Render,
)

TWINS = [
    (Auth, AsyncAuth),
    (ApiKeys, AsyncApiKeys),
    (Assets, AsyncAssets),
    (Jobs, AsyncJobs),
    (Generation, AsyncGeneration),
    (Render, AsyncRender),
    (Projects, AsyncProjects),
    (Assistant, AsyncAssistant),
]
# Async-only on purpose: the credentials' refresher, and the chunk stream behind read/download.
ASYNC_ONLY = {("AsyncAuth", "exchange_refresh_token"), ("AsyncAssets", "stream")}


def _async_methods(cls: type) -> dict[str, object]:
    return {
        name: fn for name, fn in inspect.getmembers(cls)
        if not name.startswith("_") and (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn))
    }


@pytest.mark.parametrize(("sync_cls", "async_cls"), TWINS, ids=[s.__name__ for s, _ in TWINS])
def test_each_sync_resource_mirrors_its_async_twin(sync_cls: type, async_cls: type) -> None:
    for name, fn in _async_methods(async_cls).items():
        if (async_cls.__name__, name) in ASYNC_ONLY:
            assert not hasattr(sync_cls, name)
            continue
        twin = getattr(sync_cls, name, None)
        assert twin is not None, f"{sync_cls.__name__} lacks {name}"
        want = inspect.signature(fn)
        if inspect.isasyncgenfunction(fn):
            assert str(want.return_annotation).startswith("AsyncIterator[")
            want = want.replace(return_annotation=str(want.return_annotation).removeprefix("Async"))
        # Every parameter (timeouts included) and its default, as the async method declares it.
        assert inspect.signature(twin) == want, f"{sync_cls.__name__}.{name}"
        assert twin.__doc__ == fn.__doc__  # type: ignore[attr-defined]


class AsyncEcho:
    def __init__(self) -> None:
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.closed = False

    async def add(self, a: int, b: int = 1, *, times: int = 1) -> int:
        """Adds on the loop."""
        self.loops.append(asyncio.get_running_loop())
        return (a + b) * times

    async def fail(self) -> None:
        raise LookupError("boom")

    async def count(self, n: int) -> AsyncIterator[int]:
        """Counts up to n."""
        try:
            for i in range(n):
                self.loops.append(asyncio.get_running_loop())
                yield i
        finally:
            self.closed = True


class AsyncLoudEcho(AsyncEcho):
    async def add(self, a: int, b: int = 1, *, times: int = 1) -> int:
        return -await super().add(a, b, times=times)


def _echo_class() -> type:
    # Built here so that the module imports (and the other tests run) on a client without sync().
    from viarte.client import SyncResource, sync

    class Echo(SyncResource[AsyncEcho]):
        add = sync(AsyncEcho.add)
        fail = sync(AsyncEcho.fail)
        count = sync(AsyncEcho.count)

    return Echo


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def test_generated_methods_run_on_the_loop_thread(loop: LoopThread) -> None:
    echo_cls = _echo_class()
    inner = AsyncEcho()
    echo = echo_cls(inner, loop)
    assert echo.add(2, times=3) == 9
    assert echo.add(a=1, b=5) == 6
    assert inner.loops == [loop.loop, loop.loop]
    with pytest.raises(LookupError, match="boom"):
        echo.fail()
    assert echo.add.__doc__ == "Adds on the loop."
    assert str(inspect.signature(echo.add)) == "(a: 'int', b: 'int' = 1, *, times: 'int' = 1) -> 'int'"
    assert str(inspect.signature(echo.count)) == "(n: 'int') -> 'Iterator[int]'"
    assert echo.add is echo.add  # built once per instance
    assert echo_cls.add(echo, 4) == 5  # and callable on the class, like a plain method


def test_generated_iterators_stream_and_close_on_the_loop(loop: LoopThread) -> None:
    inner = AsyncEcho()
    echo = _echo_class()(inner, loop)
    assert list(echo.count(3)) == [0, 1, 2]
    assert inner.closed and set(inner.loops) == {loop.loop}
    inner.closed = False
    it = echo.count(100)
    assert next(it) == 0 and next(it) == 1
    assert not inner.closed
    it.close()  # leaving early closes the async generator (its finally runs) on the loop
    assert inner.closed


def test_the_async_resource_s_own_override_is_what_runs(loop: LoopThread) -> None:
    echo = _echo_class()(AsyncLoudEcho(), loop)
    assert echo.add(1, 1) == -2


def test_sync_refuses_plain_functions_and_renamed_methods() -> None:
    from viarte.client import SyncResource, sync

    def plain(self: object) -> int:
        return 1

    with pytest.raises(TypeError, match="async def"):
        sync(plain)  # type: ignore[call-overload]
    with pytest.raises((TypeError, RuntimeError)) as info:  # 3.11 wraps __set_name__ errors

        class Renamed(SyncResource[AsyncEcho]):
            plus = sync(AsyncEcho.add)

    assert "names must match" in str(info.value.__cause__ or info.value)
