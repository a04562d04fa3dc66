"""The Ray engine: kernels as Ray actors. Imported only when a topology asks for it."""
