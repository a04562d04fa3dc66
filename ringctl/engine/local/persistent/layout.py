"""Where every shared word lives: the control block and the ring header (pure NumPy, no Numba).

Both the host and the compiled loop index these int64 arrays by the constants below. Each
word sits alone on its own 64-byte cache line and has exactly one writer, so the host's
commands and the kernel's counters never false-share and never need a read-modify-write.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "ACK",
    "CACHE_LINE",
    "CMD",
    "CONSUMER_GONE",
    "CONTROL_WORDS",
    "DISCARDED",
    "DROPS",
    "ERRORS",
    "HEAD",
    "HEARTBEAT",
    "IN",
    "LINE",
    "LOST",
    "OUT",
    "POS",
    "RING_CLOSED",
    "RING_HEADER_WORDS",
    "SPINNING",
    "SPIN_LIMIT",
    "SPIN_WORDS",
    "STOP_FAILED",
    "STOP_NONE",
    "STOP_TERMINATED",
    "TAIL",
    "TERMINATED",
    "Command",
]

CACHE_LINE: Final = 64
#: int64 words per cache line: word ``k * LINE`` starts line ``k``.
LINE: Final = CACHE_LINE // 8


class Command(enum.IntEnum):
    """What the host asks of a kernel (written to ``CMD``, echoed by the kernel in ``ACK``)."""

    IDLE = 0  # launched: the loop runs but handles nothing
    ACTIVE = 1
    PAUSED = 2
    TERM = 3


# Control block. The host writes CMD and DROPS; the kernel writes everything else.
CMD: Final = 0 * LINE
ACK: Final = 1 * LINE  # the last command the kernel obeyed; -1 until the loop first runs
HEARTBEAT: Final = 2 * LINE  # bumped on every pass of the loop, busy or idle
TERMINATED: Final = 3 * LINE  # STOP_* below
IN: Final = 4 * LINE  # records taken from the input ring
OUT: Final = 5 * LINE  # records published on the output ring
ERRORS: Final = 6 * LINE  # records the handler rejected (returned a negative number)
DROPS: Final = 7 * LINE  # records the host could not push (a full ring under a drop policy)
POS: Final = 8 * LINE  # 1 + input index of the record being handled (> TAIL only mid-batch)
LOST: Final = 9 * LINE  # records skipped when a restart steps over a wedged record
CONTROL_WORDS: Final = 10 * LINE

STOP_NONE: Final = 0
STOP_TERMINATED: Final = 1  # the loop saw TERM and returned
STOP_FAILED: Final = 2  # the handler raised: the loop is gone

# Ring header. The producer writes HEAD, CLOSED and DISCARDED, the consumer writes TAIL,
# the host writes CONSUMER_GONE. Both indices only grow; ``index & (capacity - 1)`` is
# the slot.
HEAD: Final = 0 * LINE
TAIL: Final = 1 * LINE
RING_CLOSED: Final = 2 * LINE  # 1 once the producer will publish nothing more
#: 1 while the consumer has failed and is not running: a producer loop then stops
#: waiting for room and discards what it would publish, counting it in DISCARDED.
CONSUMER_GONE: Final = 3 * LINE
DISCARDED: Final = 4 * LINE  # records a producer loop discarded while the consumer was gone
RING_HEADER_WORDS: Final = 5 * LINE

# Spin slots, one block per worker process (its own memory, not the arena): how many of
# its loops spin right now, and how many may. A loop with nothing to do spins only while
# it holds a slot, so the worker never spins more threads than it has cores to spare.
SPINNING: Final = 0 * LINE
SPIN_LIMIT: Final = 1 * LINE
SPIN_WORDS: Final = 2 * LINE
