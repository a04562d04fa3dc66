"""ringctl's cache directory: what it compiles once and reuses (the topology schema, loops).

``RINGCTL_CACHE_DIR`` overrides the default, ``$XDG_CACHE_HOME/ringctl`` (an absolute
``XDG_CACHE_HOME`` only, as the XDG spec says), else ``~/.cache/ringctl``. Everything in
it can be deleted at any time; it is compiled again when next needed.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path | None:
    """The cache directory (not created); ``None`` when no sensible place exists."""
    override = os.environ.get("RINGCTL_CACHE_DIR")
    if override:
        try:
            return Path(override).expanduser()
        except RuntimeError:  # `~someone` for a user this system does not know
            return None
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "ringctl"
    home = os.environ.get("HOME", "")
    return Path(home) / ".cache" / "ringctl" if os.path.isabs(home) else None
