"""ringctl's cache directory: what it compiles once and reuses (the topology schema, loops).

``RINGCTL_CACHE_DIR`` overrides the default, ``$XDG_CACHE_HOME/ringctl`` (an absolute
``XDG_CACHE_HOME`` only, as the XDG spec says), else ``~/.cache/ringctl``. Everything in
it can be deleted at any time; it is compiled again when next needed.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "loops_dir", "private_cache"]


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


def private_cache(name: str) -> Path:
    """The folder ``name`` in the cache directory, for what ringctl loads and runs.

    Created mode 0700 when missing. One that another user owns, or that others can write
    to, is refused (``UserInputError``): code planted there would run as this user.
    """
    from ringctl.exceptions import UserInputError

    hint = "set RINGCTL_CACHE_DIR to a folder of your own"
    base = cache_dir()
    if base is None:
        raise UserInputError("cannot find a cache directory (HOME is not set)", hint=hint)
    folder = base / name
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = folder.stat()
    except OSError as exc:
        raise UserInputError(f"cannot use the cache folder {folder}: {exc}", hint=hint) from exc
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise UserInputError(
            f"the cache folder {folder} can be written by other users, and the compiled "
            "code ringctl keeps there is run",
            hint=f"chmod go-w {folder}, or {hint}",
        )
    return folder


def loops_dir() -> Path:
    """Where persistent kernels' generated loops and their compiled code are kept."""
    return private_cache("loops")
