"""A persistent kernel whose worker takes a few seconds to import it: a launch in progress."""

from __future__ import annotations

import sys
import time

from ringctl.persistent import persistent_kernel
from tests.persistent.handlers import RECORD

#: How long the worker process spends importing this module (the host does not wait).
IMPORT_S = 3.0

_main = sys.modules.get("__main__")
if (
    getattr(getattr(_main, "__spec__", None), "name", "")
    == "ringctl.engine.local.persistent.__main__"
):
    time.sleep(IMPORT_S)


@persistent_kernel(input=RECORD, output=RECORD)
def copy(rec, out, state):  # type: ignore[no-untyped-def]
    out.seq = rec.seq
    out.value = rec.value
    return 1
