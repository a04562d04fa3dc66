"""C++ persistent kernels for ``gpu_persistent.py`` (handlers in ``cuda/bench.cu``)."""

from __future__ import annotations

import numpy as np

from ringctl.persistent import native_kernel

RECORD = np.dtype([("seq", np.int64), ("value", np.float64)])
#: A record with this value wedges ``wedge`` for ever.
MAGIC = -7.0

echo = native_kernel(source="cuda/bench.cu", function="echo", input=RECORD, output=RECORD)
wedge = native_kernel(source="cuda/bench.cu", function="wedge", input=RECORD, output=RECORD)
