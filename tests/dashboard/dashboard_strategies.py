"""Hypothesis strategies for status documents: the contract's shape, with any value broken."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)

JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def broken(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right type, sometimes any JSON value at all."""
    return st.one_of(good, good, JSON)


COUNT = broken(st.integers(min_value=0, max_value=10**12))
REAL = broken(st.floats(min_value=0, max_value=1e12, allow_nan=False))
NAME = broken(st.text(min_size=1, max_size=30))

KERNEL = st.fixed_dictionaries(
    {},
    optional={
        "id": NAME,
        "state": broken(
            st.sampled_from(
                ["CREATED", "LAUNCHED", "ACTIVE", "DEACTIVATED", "TERMINATING", "TERMINATED"]
            )
        ),
        "backend": broken(st.sampled_from(["cpu", "cuda"])),
        "device": broken(st.sampled_from([None, "cuda:0"])),
        "backend_note": broken(st.none() | st.text(max_size=60)),
        "replicas": COUNT,
        "entry": NAME,
        "node": broken(st.none() | st.text(max_size=15)),
        "messages_in": COUNT,
        "messages_out": COUNT,
        "rate_in": REAL,
        "rate_out": REAL,
        "inbox_depth": COUNT,
        "inbox_capacity": COUNT,
        "inbox_high_water": COUNT,
        "drops": COUNT,
        "errors": COUNT,
        "restarts": COUNT,
        "latency_p50_us": REAL,
        "latency_p99_us": REAL,
        "last_error": broken(st.none() | st.text(max_size=80)),
        "completed": broken(st.booleans()),
        "waiting": COUNT,
        "blocked": COUNT,
        "last_progress_s": REAL,
        "metrics": broken(st.dictionaries(st.text(max_size=8), SCALARS, max_size=3)),
    },
)

QUEUE = st.fixed_dictionaries(
    {},
    optional={
        "from": NAME,
        "to": NAME,
        "name": NAME,
        "depth": COUNT,
        "capacity": COUNT,
        "backpressure": broken(st.sampled_from(["block", "drop_newest", "drop_oldest"])),
        "messages": COUNT,
        "drops": COUNT,
        "high_water": COUNT,
        "blocked_s": REAL,
    },
)

PHASE = st.fixed_dictionaries(
    {},
    optional={
        "name": broken(st.sampled_from(["launch", "activate", "drain", "run"])),
        "done": COUNT,
        "total": COUNT,
        "waiting_on": broken(
            st.lists(
                st.fixed_dictionaries(
                    {}, optional={"kernel": NAME, "queued": COUNT, "seconds_left": REAL}
                ),
                max_size=8,
            )
        ),
    },
)

EVENT = st.fixed_dictionaries(
    {},
    optional={
        "t": REAL,
        "kind": broken(st.sampled_from(["pause", "resume", "restart", "failure", "info"])),
        "text": NAME,
    },
)

STATUS = st.fixed_dictionaries(
    {},
    optional={
        "name": NAME,
        "file": NAME,
        "engine": broken(st.sampled_from(["local", "ray"])),
        "uptime_s": REAL,
        "state": broken(
            st.sampled_from(
                ["starting", "running", "paused", "draining", "completed", "failed", "stopped"]
            )
        ),
        "phase": broken(st.none() | PHASE),
        "events": broken(st.lists(EVENT | JSON, max_size=4)),
        "kernels": broken(st.lists(KERNEL | JSON, max_size=8)),
        "queues": broken(st.lists(QUEUE | JSON, max_size=6)),
        "extra_key": JSON,
    },
)
