"""The kernels people run first and copy from: sources, transforms and sinks.

Each numeric kernel is split in two on purpose. ``kernels.compute`` holds the math as
plain functions of arrays that take the array module (``xp``: NumPy or CuPy) as an
argument, so it can be tested and benchmarked without a runtime; the kernel modules
(``sources``, ``math``, ``stats``, ``spectrum``, ``graph``, ``flow``, ``records``,
``sinks``)
hold the ``@ring_kernel`` bodies that move messages and pick the backend from the context.

Nothing here imports NumPy-heavy extras at import time: Numba and CuPy are imported
inside the functions that use them, so ``ringctl validate --import`` stays fast.

This package is deliberately not installed (PyPI's ``kernels`` is another project);
topologies reach it with ``python_path: [".."]``.
"""
