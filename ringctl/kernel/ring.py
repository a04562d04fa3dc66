"""``@ring_kernel`` and the one description of a kernel that the runtime launches.

A kernel is an ``async def body(ctx)``. ``@ring_kernel`` adds what the runtime and the
topology checks want to know about it (its default id, inbox size, the ports it sends
on, a pydantic model for its params, an optional set-up hook run at launch) and
registers it by id, so that ``runtime.launch("worker")`` finds it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, overload

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ringctl.engine.accounting import QueueAccount
    from ringctl.kernel.context import KernelContext

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "KernelBody",
    "KernelControl",
    "RingKernel",
    "SetupHook",
    "as_kernel",
    "is_kernel",
    "registered",
    "ring_kernel",
]

DEFAULT_QUEUE_SIZE: Final = 1024

KernelBody = Callable[["KernelContext"], Awaitable[Any]]
SetupHook = Callable[["KernelContext"], Any]


class KernelControl(Protocol):
    """Lifecycle hooks for a kernel whose work runs outside the event loop.

    A persistent kernel (a compiled loop in a worker process) is one. The runtime calls
    each hook from the matching user action, after checking the transition table and
    before it moves the kernel's state, so a hook that raises leaves the state as it
    was. Each hook returns only once the outside work obeyed (or raises).
    """

    async def obey(self, action: str) -> None:
        """``activate``, ``deactivate`` or ``reactivate`` the outside work."""

    def accounts(self) -> list[QueueAccount]:
        """The accounting law's rows for what flows outside the event loop (rings)."""
        ...

    def idle(self) -> bool:
        """Nothing in flight outside the event loop (read when the runtime asks "quiescent?")."""
        ...

    async def terminate(self, timeout: float) -> tuple[int, bool]:
        """Stop the outside work (force it after ``timeout``).

        Returns ``(items left unprocessed, whether it had to be forced)``.
        """
        ...

    async def stop_for_restart(self, timeout: float) -> bool:
        """Stop the outside work for a restart (force it after ``timeout``), keeping what
        it holds for the new instance, whose set-up hook starts it again.

        Returns whether it had to be forced.
        """
        ...

    def close_input(self, reason: str) -> None:
        """The kernel will not run again: what is still sent to it outside the event loop
        (ring to ring) is discarded and counted as ``reason`` (``lost`` or ``left``),
        rather than left for a producer to wait on."""
        ...

    def untappable(self, port: str) -> tuple[str, str] | None:
        """Why ``port`` cannot be tapped, and what to do instead; ``None`` when it can.

        A port whose messages never pass through the event loop (ring to ring) has
        nothing a tap could copy, so the tap is refused rather than left waiting.
        """
        ...


@dataclass(frozen=True, eq=False)
class RingKernel:
    """A kernel body plus what the runtime needs to launch and check it.

    Calling it calls the body, so a decorated function still works as a function.
    """

    func: KernelBody
    kernel_id: str
    queue_size: int = DEFAULT_QUEUE_SIZE
    input_type: type | None = None
    output_type: type | None = None
    #: Output ports the kernel sends on; ``None`` means undeclared (any port is accepted).
    ports: tuple[str, ...] | None = None
    #: A pydantic model that ``params`` must fit; the context then holds an instance of it.
    params_model: type[BaseModel] | None = None
    #: Runs during ``launch()`` (phase 1): allocate, compile, warm up. May be async.
    setup: SetupHook | None = None
    #: The backend the kernel asks for when the topology does not say (cpu | cuda | auto).
    backend: str | None = None
    doc: str = field(default="")
    #: Hooks the runtime awaits on activate/deactivate/reactivate/terminate (see KernelControl).
    control: KernelControl | None = None

    def __call__(self, ctx: KernelContext) -> Awaitable[Any]:
        return self.func(ctx)

    @property
    def qualified_name(self) -> str:
        return f"{self.func.__module__}:{self.func.__qualname__}"


_REGISTRY: dict[str, RingKernel] = {}


@overload
def ring_kernel(kernel_id: KernelBody, /) -> RingKernel: ...


@overload
def ring_kernel(
    kernel_id: str | None = None,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    input_type: type | None = None,
    output_type: type | None = None,
    *,
    ports: Iterable[str] | None = None,
    params: type[BaseModel] | None = None,
    setup: SetupHook | None = None,
    backend: str | None = None,
) -> Callable[[KernelBody], RingKernel]: ...


def ring_kernel(
    kernel_id: str | KernelBody | None = None,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    input_type: type | None = None,
    output_type: type | None = None,
    *,
    ports: Iterable[str] | None = None,
    params: type[BaseModel] | None = None,
    setup: SetupHook | None = None,
    backend: str | None = None,
) -> RingKernel | Callable[[KernelBody], RingKernel]:
    """Declare an ``async def body(ctx)`` as a ring kernel and register it by ``kernel_id``.

    Remember it as "the decorator names the kernel; the runtime runs it":
    ``@ring_kernel(kernel_id="worker")`` then ``await runtime.launch("worker")``. Plain
    ``@ring_kernel`` (no parentheses) declares it with the defaults, named after the function.
    """
    if callable(kernel_id):  # @ring_kernel without parentheses
        return ring_kernel()(kernel_id)
    if queue_size < 1:
        raise ValueError(f"queue_size must be at least 1, got {queue_size}")
    port_tuple = tuple(ports) if ports is not None else None

    def decorate(func: KernelBody) -> RingKernel:
        if not inspect.iscoroutinefunction(func):
            name = getattr(func, "__qualname__", None)
            raise TypeError(
                "@ring_kernel needs an 'async def' function, got "
                + (f"the plain function '{name}'" if name else repr(func))
                + "; did you forget 'async' before 'def'?"
            )
        kernel = RingKernel(
            func=func,
            kernel_id=kernel_id or func.__name__,
            queue_size=queue_size,
            input_type=input_type,
            output_type=output_type,
            ports=port_tuple,
            params_model=params,
            setup=setup,
            backend=backend,
            doc=inspect.getdoc(func) or "",
        )
        _REGISTRY[kernel.kernel_id] = kernel
        return kernel

    return decorate


def registered(kernel_id: str) -> RingKernel | None:
    """The kernel registered under ``kernel_id`` by ``@ring_kernel``, if any."""
    return _REGISTRY.get(kernel_id)


def registered_ids() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def is_kernel(obj: object) -> bool:
    """A ``RingKernel`` or a plain ``async def f(ctx)`` taking exactly one positional argument."""
    if isinstance(obj, RingKernel):
        return True
    if not inspect.iscoroutinefunction(obj):
        return False
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) == 1


def as_kernel(obj: object, kernel_id: str) -> RingKernel:
    """Wrap a plain ``async def f(ctx)`` (or pass a ``RingKernel`` through).

    Raises ``TypeError`` with a guess at the mistake for anything else.
    """
    if isinstance(obj, RingKernel):
        return obj
    if is_kernel(obj):
        func: KernelBody = obj  # type: ignore[assignment]
        return RingKernel(
            func=func,
            kernel_id=kernel_id,
            params_model=getattr(obj, "params_model", None),
            ports=getattr(obj, "ports", None),
            doc=inspect.getdoc(obj) or "",
        )
    if inspect.iscoroutinefunction(obj):
        raise TypeError(
            f"{obj!r} is async but does not take exactly one argument (the kernel context); "
            "a kernel is 'async def kernel(ctx)'"
        )
    if callable(obj):
        raise TypeError(
            f"{obj!r} is not a kernel: a kernel is 'async def kernel(ctx)' or a "
            "@ring_kernel-decorated function; did you forget 'async'?"
        )
    raise TypeError(
        f"{obj!r} ({type(obj).__name__}) is not a kernel: a kernel is 'async def kernel(ctx)' "
        "or a @ring_kernel-decorated function"
    )
