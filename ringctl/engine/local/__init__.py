"""The local engine: one asyncio event loop in this process, persistent kernels in
worker processes."""
