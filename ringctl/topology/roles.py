"""Which kernels are sources: one definition, used by the file model and the launch plan.

A **source** originates work: it has at least one outbound queue and no inbound queue
other than feedback edges (a kernel that only hears back from its own loop still starts
the work). A kernel with no queue at all is not a source: nothing flows from it, so a
run does not wait for it to finish (a store the others reach through ``depends_on``, say).
A run completes when every source has finished and every queue has drained.

``down`` stops first every kernel that nothing feeds (``unfed_ids``): the sources, and the
kernels with no queue at all, which would otherwise keep a drain waiting for them to
become idle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["source_ids", "unfed_ids"]


def source_ids(kernel_ids: Sequence[str], edges: Iterable[tuple[str, str, bool]]) -> list[str]:
    """The sources among ``kernel_ids`` (in that order); ``edges`` are
    ``(producer, consumer, feedback)`` triples."""
    fed: set[str] = set()
    feeding: set[str] = set()
    for producer, consumer, feedback in edges:
        feeding.add(producer)
        if not feedback:
            fed.add(consumer)
    return [k for k in kernel_ids if k in feeding and k not in fed]


def unfed_ids(kernel_ids: Sequence[str], edges: Iterable[tuple[str, str, bool]]) -> list[str]:
    """The kernels no queue feeds (feedback edges aside), in ``kernel_ids``'s order."""
    fed = {consumer for _producer, consumer, feedback in edges if not feedback}
    return [k for k in kernel_ids if k not in fed]
