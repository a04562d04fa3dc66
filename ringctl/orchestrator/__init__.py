"""Turns a validated topology into calls on a runtime: ordering, draining, restarts."""

from ringctl.orchestrator.plan import EdgePlan, KernelPlan, Plan, RestartPolicy
from ringctl.orchestrator.supervisor import DownReport, LaunchFailed, RunResult, Supervisor

__all__ = [
    "DownReport",
    "EdgePlan",
    "KernelPlan",
    "LaunchFailed",
    "Plan",
    "RestartPolicy",
    "RunResult",
    "Supervisor",
]
