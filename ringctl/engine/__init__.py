"""Engines: the contract the supervisor drives, the kernel lifecycle, and the engines
that implement them."""
