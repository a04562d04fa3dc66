"""What a kernel author imports: ``@ring_kernel``, the kernel context, ``@persistent_kernel``."""
