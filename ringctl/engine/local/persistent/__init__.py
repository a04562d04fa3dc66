"""Persistent kernels' machinery: rings in shared memory, compiled loops, the worker
process and its host."""
