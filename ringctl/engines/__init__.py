"""Engines other than the local event loop. Each one is imported only when asked for."""
