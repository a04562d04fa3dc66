"""``WorkerProcess``: start, talk to, stop and kill one worker (the host's side of the socket).

A fresh interpreter (never a fork of a process that runs threads), started as ``python
-m ringctl.engine.local.persistent FD`` rather than with multiprocessing's spawn, which would
re-run the caller's ``__main__`` (a script without an ``if __name__ == "__main__"``
guard). The socket carries the ``WorkerSpec`` first, then ``start`` / ``exit`` commands
one way and replies the other (see ``ringctl.engine.local.persistent.worker``).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any, Final

from ringctl.engine.local.persistent.worker import WorkerSpec

__all__ = ["WorkerProcess"]

_KILL_WAIT_S: Final = 5.0
_EXIT_WAIT_S: Final = 2.0


class WorkerProcess:
    """One running worker; ``replies`` collects what it said, oldest first."""

    def __init__(self, spec: WorkerSpec) -> None:
        parent, child = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "ringctl.engine.local.persistent", str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        self._conn: Connection | None = Connection(parent.detach())
        self.replies: list[tuple[Any, ...]] = []
        self.send(spec)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        return self._proc.poll()

    def send(self, message: object) -> None:
        if self._conn is None:
            raise BrokenPipeError("the worker's socket is closed")
        self._conn.send(message)

    def read(self) -> None:
        """Move whatever the worker has sent into ``replies`` (never blocks)."""
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll(0):
                self.replies.append(conn.recv())
        except (EOFError, OSError):
            pass

    def take(self, kinds: tuple[str, ...], kernel_id: str) -> tuple[Any, ...] | None:
        """The first reply of one of ``kinds`` about ``kernel_id``, removed; else None."""
        for reply in self.replies:
            if reply[0] in kinds and reply[1] == kernel_id:
                self.replies.remove(reply)
                return reply
        return None

    def kill(self) -> None:
        """SIGKILL (a wedged loop ignores everything else) and reap. Idempotent."""
        if self._proc.poll() is None:
            self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(_KILL_WAIT_S)
        self._close()

    def stop(self) -> None:
        """Ask the worker to exit, wait a little, then kill it. Idempotent."""
        if self._conn is not None and self._proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(("exit",))
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(_EXIT_WAIT_S)
        self.kill()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
