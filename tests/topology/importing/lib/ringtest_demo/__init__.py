"""Kernels for the importer tests, reached through `python_path: [lib]`."""

from pydantic import BaseModel, ConfigDict, Field

from ringctl.kernel.ring import ring_kernel


class CounterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=0)
    step: int = 1


@ring_kernel(kernel_id="ringtest-counter", params=CounterParams)
async def counter(ctx):  # type: ignore[no-untyped-def]
    """Counts up to params.count."""


@ring_kernel(kernel_id="ringtest-splitter", ports=["evens", "odds"])
async def splitter(ctx):  # type: ignore[no-untyped-def]
    """Sends even numbers on `evens`, odd ones on `odds`."""


async def plain(ctx):  # type: ignore[no-untyped-def]
    """A plain `async def f(ctx)` is a kernel too."""


def not_async(ctx):  # type: ignore[no-untyped-def]
    return ctx


NOT_A_KERNEL = 42
