"""Turns a validated topology into calls on a runtime: ordering, draining, restarts.

The names below are imported on first use: ``ringctl ps`` reads the status document
(``orchestrator.status``) without loading the supervisor and the engines.
"""

from typing import TYPE_CHECKING

from ringctl._lazy import lazy_exports

if TYPE_CHECKING:
    from ringctl.orchestrator.plan import EdgePlan as EdgePlan
    from ringctl.orchestrator.plan import KernelPlan as KernelPlan
    from ringctl.orchestrator.plan import Plan as Plan
    from ringctl.orchestrator.plan import RestartPolicy as RestartPolicy
    from ringctl.orchestrator.supervisor import DownReport as DownReport
    from ringctl.orchestrator.supervisor import LaunchFailed as LaunchFailed
    from ringctl.orchestrator.supervisor import RunResult as RunResult
    from ringctl.orchestrator.supervisor import Supervisor as Supervisor

_EXPORTS = {
    **dict.fromkeys(
        ["EdgePlan", "KernelPlan", "Plan", "RestartPolicy"], "ringctl.orchestrator.plan"
    ),
    **dict.fromkeys(
        ["DownReport", "LaunchFailed", "RunResult", "Supervisor"], "ringctl.orchestrator.supervisor"
    ),
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports("ringctl.orchestrator", _EXPORTS, globals(), __all__)
