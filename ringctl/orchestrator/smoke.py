"""``ringctl smoke``: run a topology the way CI does and check its ``smoke.expect``.

A smoke run is ``up`` → run until the topology completes (or for ``smoke.duration``) →
down, bounded by ``smoke.timeout``; then every expectation is checked against the final
telemetry. Results are plain data so the CLI can print a table, JSON or JUnit XML.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ringctl._printable import printable
from ringctl.exceptions import RingctlError
from ringctl.orchestrator.plan import Plan
from ringctl.orchestrator.supervisor import Supervisor

if TYPE_CHECKING:
    from ringctl.engine.contract import Engine

__all__ = ["Check", "SmokeResult", "junit_xml", "smoke_plan"]

DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Check:
    kernel: str
    what: str  # e.g. "min_messages_in"
    expected: Any
    actual: Any
    ok: bool
    note: str | None = None  # what the figures suggest (a metric name that is close)

    def describe(self) -> str:
        text = f"{self.kernel}: {self.what} expected {self.expected}, got {self.actual}"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True, slots=True)
class SmokeResult:
    file: str
    name: str
    ok: bool
    seconds: float
    outcome: str  # completed | stopped | failed | timeout | error
    checks: list[Check] = field(default_factory=list)
    error: str | None = None

    @property
    def failures(self) -> list[str]:
        out = [c.describe() for c in self.checks if not c.ok]
        if self.error:
            out.insert(0, self.error)
        return out

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["failures"] = self.failures
        return doc


async def smoke_plan(plan: Plan, *, engine: Engine | None = None) -> SmokeResult:
    """Run ``plan`` to completion (or its smoke duration) and check its expectations."""
    smoke = plan.smoke
    timeout = float(smoke.timeout) if smoke is not None else DEFAULT_TIMEOUT_S
    duration = float(smoke.duration) if smoke is not None and smoke.duration else None
    sup = Supervisor(plan, engine)
    t0 = time.monotonic()
    file = plan.file or plan.name
    error: str | None = None
    try:
        await asyncio.wait_for(sup.up(), timeout)
    except RingctlError as exc:
        return SmokeResult(file, plan.name, False, time.monotonic() - t0, "error", [], str(exc))
    except TimeoutError:
        await sup.runtime.terminate_all(timeout=1.0)
        return SmokeResult(
            file, plan.name, False, time.monotonic() - t0, "timeout", [],
            f"launch did not finish within smoke.timeout ({timeout:g} s)",
        )  # fmt: skip
    left = max(0.1, timeout - (time.monotonic() - t0))
    run = asyncio.create_task(sup.run(duration=duration, down_timeout=min(10.0, left)))
    done, _ = await asyncio.wait({run}, timeout=left)
    if not done:
        sup.request_stop("smoke timeout", force=True)
        await run
        outcome = "timeout"
        error = (
            f"did not complete within smoke.timeout ({timeout:g} s); "
            "a topology with an endless source needs smoke.duration"
        )
    else:
        result = run.result()
        outcome = result.outcome
        if result.exit_code != 0:
            error = result.failure or f"the run ended with exit code {result.exit_code}"
    await sup.runtime.close()
    status = sup.status(fresh=True)
    checks = _checks(plan, status)
    ok = error is None and all(c.ok for c in checks)
    return SmokeResult(file, plan.name, ok, time.monotonic() - t0, outcome, checks, error)


def _checks(plan: Plan, status: dict[str, Any]) -> list[Check]:
    smoke = plan.smoke
    if smoke is None:
        return []
    kernels = {k["id"]: k for k in status.get("kernels", [])}
    checks: list[Check] = []
    for kernel_id, expect in smoke.expect.items():
        k = kernels.get(kernel_id)
        if k is None:
            checks.append(Check(kernel_id, "exists", True, False, False))
            continue
        for what in ("min_messages_in", "min_messages_out", "max_errors", "max_drops"):
            expected, actual = getattr(expect, what), k[what[4:]]  # min_messages_in: messages_in
            if expected is not None:
                ok = actual >= expected if what.startswith("min_") else actual <= expected
                checks.append(Check(kernel_id, what, expected, actual, ok))
        if expect.must_complete:
            checks.append(Check(kernel_id, "must_complete", True, k["completed"], k["completed"]))
        metrics = k.get("metrics") or {}
        for key, bound in expect.metrics.items():
            note = None if key in metrics else _no_such_metric(key, metrics)
            checks.extend(_metric_checks(kernel_id, key, bound, metrics.get(key), note))
    return checks


def _no_such_metric(key: str, metrics: dict[str, Any]) -> str:
    from ringctl.topology.errors import did_you_mean

    names = sorted(str(name) for name in metrics)
    guess = did_you_mean(key, names)
    if guess is not None:
        return f"it has no metric {key!r}: did you mean {guess!r}?"
    return f"it has no metric {key!r}; its metrics: {', '.join(names) or 'none'}"


def _metric_checks(
    kernel_id: str, key: str, bound: Any, actual: Any, note: str | None = None
) -> list[Check]:
    """One check per bound on ``ctx.metrics[key]`` (a missing or non-numeric value fails)."""
    if isinstance(bound, int | float):
        wanted: list[tuple[str, float]] = [("equals", bound)]
    else:
        wanted = [(w, v) for w in ("equals", "min", "max") if (v := getattr(bound, w)) is not None]
    number = actual if isinstance(actual, int | float) and not isinstance(actual, bool) else None
    out = []
    for what, expected in wanted:
        if number is None:
            ok = False
        elif what == "equals":
            ok = number == expected or (
                (isinstance(number, float) or isinstance(expected, float))
                and math.isclose(number, expected, rel_tol=1e-9, abs_tol=1e-12)
            )
        elif what == "min":
            ok = number >= expected
        else:
            ok = number <= expected
        label = f"metrics.{key} {'==' if what == 'equals' else what}"
        out.append(Check(kernel_id, label, expected, actual, ok, note))
    return out


def junit_xml(results: list[SmokeResult]) -> str:
    """One ``<testsuite>`` with a ``<testcase>`` per topology: what CI systems display."""
    failures = sum(1 for r in results if not r.ok)
    suite = ET.Element(
        "testsuite",
        name="ringctl smoke",
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname="ringctl.smoke", name=_xml(r.name), file=_xml(r.file),
            time=f"{r.seconds:.3f}",
        )  # fmt: skip
        if not r.ok:
            failure = ET.SubElement(case, "failure", message=_xml("; ".join(r.failures)[:500]))
            failure.text = _xml("\n".join(r.failures), lines=True)
        out = ET.SubElement(case, "system-out")
        out.text = _xml(
            "\n".join(f"{'ok  ' if c.ok else 'FAIL'} {c.describe()}" for c in r.checks)
            + f"\noutcome: {r.outcome}",
            lines=True,
        )
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


_NOT_XML: Final = re.compile("[\ud800-\udfff\ufffe\uffff]")


def _xml(text: str, *, lines: bool = False) -> str:
    """``text`` as XML 1.0 can hold it: control characters (a kernel's error may quote
    anything) shown escaped, lone surrogates and non-characters as ``\\udxxx``."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", printable(text, lines=lines))
