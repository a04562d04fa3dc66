"""Persistent kernels with C++ handlers: one loop source for the GPU and its CPU twin.

``prelude.h`` and ``loop.h`` hold the loop; ``source`` turns a kernel's records and its
``.cu`` handler into one translation unit; ``twin`` builds that with the host C++
compiler and runs it through ctypes; ``cuda`` builds it with NVRTC (through CuPy) and
launches it once on the GPU; ``runner`` drives either from a worker like any loop.
"""
