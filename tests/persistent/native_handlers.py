"""C++ persistent kernels the tests launch (handlers in cuda/handlers.cu)."""

from __future__ import annotations

from ringctl.persistent import native_kernel

from .handlers import MAGIC, RECORD

assert MAGIC == -7.0  # wedge_on_magic in handlers.cu compares with the same value

double = native_kernel(
    source="cuda/handlers.cu", function="double_value", input=RECORD, output=RECORD
)
keep_even = native_kernel(
    source="cuda/handlers.cu", function="keep_even", input=RECORD, output=RECORD
)
total = native_kernel(source="cuda/sink.cu", function="total", input=RECORD, state=2)
wedge_on_magic = native_kernel(
    source="cuda/handlers.cu", function="wedge_on_magic", input=RECORD, output=RECORD
)
broken = native_kernel(source="cuda/broken.cu", function="broken", input=RECORD, output=RECORD)
