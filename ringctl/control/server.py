"""The supervisor's side of the control socket.

One connection can carry several requests; each request is handled to completion
before the next line is read. Commands that change the topology go through the
supervisor's lock, so concurrent clients are served one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
from typing import Any

from ringctl.control import protocol
from ringctl.control.paths import TopologyFiles
from ringctl.control.tap import serve_tap
from ringctl.exceptions import RingctlError, RunFailedError, UserInputError
from ringctl.orchestrator.supervisor import Supervisor

__all__ = ["AlreadyRunningError", "ControlServer"]


class AlreadyRunningError(RunFailedError):
    """A topology of this name already runs from this state directory."""


def _claim(files: TopologyFiles) -> int:
    """Take the name's lock (``NAME.lock``, held while the supervisor lives); returns its fd.

    An ``flock`` rather than "does the socket answer?": two ``up`` racing each other, or
    a live supervisor too busy to answer a ping in time, must never both get the name
    (binding a Unix socket removes the old one, orphaning its supervisor). The kernel
    drops the lock when the process dies, so a supervisor killed with -9 frees it.
    """
    fd = os.open(files.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        pid = (files.read_pid() or {}).get("pid", "?")
        raise AlreadyRunningError(
            f"topology {files.name!r} is already running (pid {pid})",
            hint=f"ringctl down {files.name}, or run this one with another name",
        ) from None
    return fd


class ControlServer:
    """Serves ``status``, ``pause``, ``resume``, ``down`` and ``watch`` for one supervisor."""

    def __init__(
        self,
        supervisor: Supervisor,
        files: TopologyFiles,
        *,
        watch_interval: float = 0.25,
        log_path: str | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.files = files
        self.watch_interval = watch_interval
        self.log_path = log_path
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._lock_fd: int | None = None

    async def start(self) -> None:
        """Claim the name (refusing a live twin, cleaning a stale one) and listen."""
        files = self.files
        self._lock_fd = _claim(files)
        try:
            # Holding the name's lock, whatever socket or pid file is here is stale:
            # the supervisor that made it is gone (a lock dies with its process).
            files.remove()
            old_umask = os.umask(0o177)  # the socket is born 0600: nobody else can connect
            try:
                self._server = await asyncio.start_unix_server(
                    self._accept, path=str(files.socket), limit=protocol.MAX_LINE
                )
            finally:
                os.umask(old_umask)
            files.socket.chmod(0o600)
            info = {
                "pid": os.getpid(),
                "name": files.name,
                "file": self.supervisor.plan.file,
                "socket": str(files.socket),
                "log": self.log_path,
                "started": time.time(),
            }
            tmp = files.pid.with_suffix(".pid.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(info, fh)
            os.replace(tmp, files.pid)
        except BaseException:
            if self._server is not None:
                self._server.close()
            self._release()
            raise

    async def close(self) -> None:
        """Stop listening, finish the replies in flight, remove the socket and pid file."""
        if self._server is not None:
            self._server.close()
        if self._handlers:
            _, pending = await asyncio.wait(self._handlers, timeout=2.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self._lock_fd is not None:  # never remove the files of a twin that won the name
            self.files.remove()
        self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock: the name is free again
            self._lock_fd = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # longer than MAX_LINE
                await self._send(writer, protocol.error_reply("request too long", exit_code=2))
                return
            if not line:
                return
            try:
                request = protocol.decode(line)
            except ValueError as exc:
                await self._send(writer, protocol.error_reply(f"bad request: {exc}", exit_code=2))
                continue
            if request.get("v", protocol.PROTOCOL_VERSION) != protocol.PROTOCOL_VERSION:
                await self._send(
                    writer,
                    protocol.error_reply(
                        f"protocol version {request.get('v')} is not supported "
                        f"(this supervisor speaks {protocol.PROTOCOL_VERSION})",
                        hint="use the same ringctl version for up and for control commands",
                        exit_code=2,
                    ),
                )
                continue
            await self._dispatch(request, writer, reader)

    async def _dispatch(
        self,
        request: dict[str, Any],
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader | None = None,
    ) -> None:
        op = request.get("op")
        args = request.get("args") or {}
        sup = self.supervisor
        if op not in protocol.OPS:
            known = ", ".join(sorted(protocol.OPS))
            await self._send(
                writer, protocol.error_reply(f"unknown op {op!r} (known: {known})", exit_code=2)
            )
            return
        try:
            if op == "ping":
                result: Any = {
                    "name": sup.plan.name,
                    "pid": os.getpid(),
                    "state": sup.state,
                    "file": sup.plan.file,
                    "uptime_s": round(sup.uptime_s, 3),
                }
            elif op == "status":
                result = sup.status()
            elif op == "pause":
                result = {"paused": await sup.pause(_kernels(args)), "state": sup.state}
            elif op == "resume":
                result = {"resumed": await sup.resume(_kernels(args)), "state": sup.state}
            elif op == "down":
                result = await self._down(args, writer)
            elif op == "restart":
                kernels = _kernels(args) or []
                timeout = _number(args, "timeout", 5.0)
                result = {"restarted": await sup.restart(kernels, timeout), "state": sup.state}
            elif op == "scale":
                replicas = args.get("replicas")
                if not isinstance(replicas, int) or isinstance(replicas, bool):
                    raise UserInputError(f"replicas must be a whole number, got {replicas!r}")
                timeout = _number(args, "timeout", 5.0)
                result = await sup.scale(str(args.get("kernel")), replicas, timeout)
            elif op == "tap":
                result = await serve_tap(sup, args, writer, reader)
            else:  # watch
                await self._watch(args, writer)
                return
        except RingctlError as exc:
            await self._send(writer, protocol.error_reply(exc.message, exc.hint, exc.exit_code))
            return
        await self._send(writer, protocol.ok_reply(result))

    async def _down(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any]:
        timeout = float(args.get("timeout", 10.0))
        pending: list[dict[str, Any]] = []

        def progress(phase: dict[str, Any]) -> None:
            pending.append(phase)

        async def pump() -> None:
            while True:
                await asyncio.sleep(0.2)
                if pending:
                    last = pending[-1]
                    pending.clear()
                    await self._send(writer, {"v": 1, "event": "progress", "data": last})

        pumper = asyncio.create_task(pump())
        try:
            report = await self.supervisor.down(timeout, progress)
        finally:
            pumper.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await pumper
        return {"state": self.supervisor.state, **report.as_dict()}

    async def _watch(self, args: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        interval = max(0.05, float(args.get("interval", self.watch_interval)))
        sup = self.supervisor
        while True:
            await self._send(writer, {"v": 1, "event": "status", "data": sup.status()})
            if sup.ended:
                await self._send(writer, {"v": 1, "event": "end", "data": {"state": sup.state}})
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sup.wait_ended(), interval)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, document: dict[str, Any]) -> None:
        writer.write(protocol.encode(document))
        await writer.drain()


def _number(args: dict[str, Any], key: str, default: float) -> float:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise UserInputError(f"{key} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _kernels(args: dict[str, Any]) -> list[str] | None:
    kernels = args.get("kernels")
    if kernels is None:
        return None
    return [str(k) for k in kernels]
