"""What every resource shares: ``Page``, the async resource base, and the sync twin generator.

Each sync resource (``Auth``, ``Assets``, ``Jobs``, ...) is declared once as a list of its async
twin's methods, ``register = sync(AsyncAuth.register)``: the generated method has the async
method's parameters, docstring and (for type checkers, through ``ParamSpec``) its exact signature,
and runs the coroutine on the client's private loop thread, or turns an async iterator into a
sync iterator over that loop. The per-call machinery lives in :class:`viarte._sync.LoopThread`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from viarte._sync import LoopThread
from viarte.transport import Transport

if TYPE_CHECKING:
    from viarte.client._client import AsyncClient

__all__ = ["Page", "SyncResource", "sync"]

A = TypeVar("A")
T = TypeVar("T")
Params = ParamSpec("Params")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str = ""


class _Resource:
    """An async resource: a group of RPCs of one service, sharing the client's transport."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @property
    def _t(self) -> Transport:
        return self._client.transport


class SyncResource(Generic[A]):
    """The synchronous view of one async resource (``_a``), run on the client's loop thread."""

    def __init__(self, inner: A, loop: LoopThread) -> None:
        self._a = inner
        self._loop = loop


class _SyncMethod(Generic[Params, T]):
    """A sync method generated from an async one (see :func:`sync`).

    A non-data descriptor: the first access on an instance builds the bound callable and keeps it
    in the instance's ``__dict__``, so later calls cost one plain function call on top of the loop
    hop (bench/sdk_overhead.py measures the sync client).
    """

    def __init__(self, fn: Callable[..., Any], iterate: bool) -> None:
        self._iterate = iterate
        # What help(), IDEs and inspect.signature read, on the class attribute and on each bound call.
        self.__wrapped__ = fn
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.__qualname__ = fn.__qualname__
        self.__signature__ = _sync_signature(fn, iterate)  # with self, as on a class
        self._bound_signature = self.__signature__.replace(parameters=list(self.__signature__.parameters.values())[1:])

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self.__name__:
            # The call goes to the async resource's method of the same name (so a subclass's
            # override is the one that runs); a different name would silently call another method.
            raise TypeError(f"{owner.__name__}.{name} = sync(...{self.__name__}): names must match")
        self.__qualname__ = f"{owner.__qualname__}.{name}"

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _SyncMethod[Params, T]: ...

    @overload
    def __get__(self, obj: SyncResource[Any], owner: type | None = None) -> Callable[Params, T]: ...

    def __get__(self, obj: SyncResource[Any] | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        # The async method is looked up at each call, so the sync twin never holds a stale one.
        inner, loop, name = obj._a, obj._loop, self.__name__
        if self._iterate:
            def call(*args: Any, **kwargs: Any) -> Any:
                return loop.iterate(getattr(inner, name)(*args, **kwargs))
        else:
            def call(*args: Any, **kwargs: Any) -> Any:
                return loop.run(getattr(inner, name)(*args, **kwargs))
        functools.update_wrapper(call, self.__wrapped__)
        call.__qualname__ = self.__qualname__
        call.__signature__ = self._bound_signature  # type: ignore[attr-defined]
        obj.__dict__[self.__name__] = call
        return call

    def __repr__(self) -> str:
        return f"<sync method {self.__qualname__}{self.__signature__}>"

    def __call__(self, resource: SyncResource[Any], /, *args: Any, **kwargs: Any) -> Any:
        # Called on the class, like a plain function: ``Jobs.get(client.render, job_id)``.
        return self.__get__(resource)(*args, **kwargs)


@overload
def sync(fn: Callable[Concatenate[Any, Params], Coroutine[Any, Any, T]]) -> _SyncMethod[Params, T]: ...


@overload
def sync(fn: Callable[Concatenate[Any, Params], AsyncIterator[T]]) -> _SyncMethod[Params, Iterator[T]]: ...


def sync(fn: Callable[..., Any]) -> _SyncMethod[Any, Any]:
    """The sync twin of an async resource method: ``name = sync(AsyncResource.name)``.

    A coroutine method returns its result; an async generator method returns a sync iterator
    (closing it early closes the async generator on the loop). For a generic resource, name the
    parametrised class (``sync(AsyncJobs[J, P].create)``) so type checkers keep the type variables.
    """
    if inspect.isasyncgenfunction(fn):
        return _SyncMethod(fn, iterate=True)
    if inspect.iscoroutinefunction(fn):
        return _SyncMethod(fn, iterate=False)
    raise TypeError(f"sync() takes an async def method, not {fn!r}")


def _sync_signature(fn: Callable[..., Any], iterate: bool) -> inspect.Signature:
    """The async method's signature, where an iterator's return reads ``Iterator[...]``
    (annotations are strings here: every module uses ``from __future__ import annotations``)."""
    sig = inspect.signature(fn)
    ret = sig.return_annotation
    if iterate and isinstance(ret, str) and ret.startswith("AsyncIterator["):
        ret = ret.removeprefix("Async")
    return sig.replace(return_annotation=ret)
