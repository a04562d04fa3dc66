"""The supervisor's side of the control socket, on its own thread and event loop.

The kernels share one event loop; a kernel that blocks it (``time.sleep`` per message, a
long compiled call) would freeze a server living there, exactly when someone needs
``ps`` or ``down``. So the server runs on a thread of its own:

- ``ping`` is answered from plain attributes, never waiting for the kernels' loop;
- ``status`` and ``watch`` ask the kernels' loop for a fresh document and wait at most
  ``FRESH_WAIT_S``; past that they answer with the last document the loop published,
  marked ``stale_s``, and with the watchdog's ``loop`` report saying what holds it;
- ``pause``, ``resume`` and ``down`` are handed over to the kernels' loop (``Handoff``)
  and bounded by the client's deadline: a command not started by then is never applied.

One connection can carry several requests; each is answered before the next line is
read. Commands that change the topology are serialized by the supervisor itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ringctl.control import protocol
from ringctl.control.handoff import Abandoned, Claim, Handoff
from ringctl.control.history import remove_stale
from ringctl.control.paths import TopologyFiles, claim_name, forget_lock, release_name
from ringctl.control.tap import serve_tap
from ringctl.control.target import ControlTarget
from ringctl.exceptions import RingctlError, RunFailedError

__all__ = ["AlreadyRunningError", "ControlServer"]

log = logging.getLogger("ringctl.control")

#: How long ``status`` waits for a fresh document before it answers with the last one.
FRESH_WAIT_S: Final = 0.1
#: ``down`` tells its client it is still at work this often, even while the kernels'
#: loop is blocked (the client's wait is per message, not for the whole drain).
PROGRESS_EVERY_S: Final = 0.2
#: How often the pid file is touched, to say this supervisor is still alive.
HEARTBEAT_S: Final = 1.0
#: Replies in flight get this long to finish when the server closes.
CLOSE_GRACE_S: Final = 2.0


class AlreadyRunningError(RunFailedError):
    """A topology of this name already runs from this state directory."""


Handler = Callable[[protocol.Request, asyncio.StreamWriter, asyncio.StreamReader], Awaitable[Any]]


class ControlServer:
    """Serves ``ping``, ``status``, ``pause``, ``resume``, ``down``, ``watch``,
    ``restart``, ``scale`` and ``tap``.

    ``start`` and ``close`` are called on the kernels' loop (the one ``target`` lives
    on); everything else happens on the server's own thread.
    """

    def __init__(
        self,
        target: ControlTarget,
        files: TopologyFiles,
        *,
        watch_interval: float = 0.25,
        log_path: str | None = None,
    ) -> None:
        self.target = target
        self.files = files
        self.watch_interval = watch_interval
        self.log_path = log_path
        self._lock_fd: int | None = None
        self._gave_up_restoring = False
        self._started = time.time()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._handoff: Handoff | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        # (monotonic time, document): the last status the kernels' loop published.
        self._latest: tuple[float, dict[str, Any]] | None = None
        t = target
        # Commands handed to the kernels' loop as they are: op -> the call it makes.
        commands: dict[str, Callable[[Any], Awaitable[Any]]] = {
            "pause": lambda a: t.pause(a.kernels),
            "resume": lambda a: t.resume(a.kernels),
            "restart": lambda a: t.restart(list(a.kernels), a.timeout),
            "scale": lambda a: t.scale(a.kernel, a.replicas, a.timeout),
        }
        self._ops: dict[str, Handler] = {
            **{op: self._handing(call) for op, call in commands.items()},
            "ping": self._ping,
            "status": lambda *_: self._document(),
            "down": self._down,
            "watch": self._watch,
            "tap": self._tap,
            "apply": self._apply,
        }

    # -- publishing (kernels' loop) ------------------------------------------------------

    def publish(self, document: dict[str, Any]) -> None:
        """Keep ``document`` as the latest status (any thread; one reference swap)."""
        self._latest = (time.monotonic(), document)

    # -- life cycle (kernels' loop) ------------------------------------------------------

    async def start(self) -> None:
        """Claim the name (refusing a live twin, cleaning a stale one), listen on a new
        thread, and write the pid file."""
        files = self.files
        self._lock_fd = claim_name(files)
        if self._lock_fd is None:
            pid = (files.read_pid() or {}).get("pid", "?")
            raise AlreadyRunningError(
                f"topology {files.name!r} is already running (pid {pid})",
                hint=f"ringctl down {files.name}, or run this one with another name",
            )
        sock: socket.socket | None = None
        try:
            # Holding the name's lock, whatever socket or pid file is here is stale:
            # the supervisor that made it is gone (a lock dies with its process).
            remove_stale(files)
            sock = _listen(files)
            self._handoff = Handoff(asyncio.get_running_loop())
            ready = threading.Event()
            failure: list[BaseException] = []
            self._thread = threading.Thread(
                target=self._thread_main,
                args=(sock, ready, failure),
                name=f"ringctl-control:{files.name}",
                daemon=True,
            )
            self._thread.start()
            await asyncio.to_thread(ready.wait)
            if failure:
                raise failure[0]
            self._write_pid_file()
        except BaseException as exc:
            await self._stop_thread()
            if sock is not None:
                sock.close()
            files.remove()
            self._release()
            if isinstance(exc, OSError):
                raise RunFailedError(
                    f"cannot set up the control socket of {files.name!r} in "
                    f"{files.socket.parent}: {exc.strerror or exc}",
                    hint="free some space, or set RINGCTL_STATE_DIR to another directory",
                ) from exc
            raise

    def _write_pid_file(self) -> None:
        files = self.files
        info = {
            "pid": os.getpid(),
            "name": files.name,
            "file": self.target.file,
            "socket": str(files.socket),
            "log": self.log_path,
            "started": self._started,
        }
        tmp = files.pid.with_suffix(".pid.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(info, fh)
            os.replace(tmp, files.pid)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    async def close(self) -> None:
        """Stop listening, finish the replies in flight, remove the socket, pid and lock."""
        await self._stop_thread()
        if self._lock_fd is not None:  # never remove the files of a twin that won the name
            self.files.remove()
        self._release()

    async def _stop_thread(self) -> None:
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # its loop already ended
                loop.call_soon_threadsafe(stopping.set)
        # Awaited, not joined here: a reply in flight may still need this loop.
        await asyncio.to_thread(thread.join, CLOSE_GRACE_S + 5.0)
        self._thread = None

    def _release(self) -> None:
        if self._lock_fd is not None:
            release_name(self.files, self._lock_fd)
            self._lock_fd = None

    # -- the control thread --------------------------------------------------------------

    def _thread_main(
        self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(sock, ready, failure))
        except BaseException as exc:  # never dies silently: the log says why
            log.exception("the control server stopped: %s", exc)
            failure.append(exc)
        finally:
            ready.set()
            loop.close()

    async def _main(
        self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        self._stopping = asyncio.Event()
        try:
            server = await asyncio.start_unix_server(
                self._accept, sock=sock, limit=protocol.MAX_LINE
            )
        except BaseException as exc:
            failure.append(exc)
            return
        finally:
            ready.set()
        servers = [server]
        try:
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), HEARTBEAT_S)
                try:
                    # The pid file's mtime is when this process was last seen alive: if
                    # it is killed, that is when its run ended (``record_death``).
                    os.utime(self.files.pid)
                except FileNotFoundError:
                    restored = await self._restore_files()
                    if restored is not None:
                        servers.append(restored)
                except OSError:
                    pass
        finally:
            for server in servers:
                server.close()
            if self._handlers:
                _, pending = await asyncio.wait(self._handlers, timeout=CLOSE_GRACE_S)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)

    async def _restore_files(self) -> asyncio.Server | None:
        """Someone removed the state files (a /tmp cleaner, an rm -rf): make them again,
        so ``ps`` and ``down`` reach this run, unless another run has taken the name."""
        from ringctl.control.paths import StateDir

        if self._gave_up_restoring:
            return None
        files = self.files
        server: asyncio.Server | None = None
        try:
            StateDir(files.pid.parent).ensure()
            if not self._holds_lock_file():
                fd = claim_name(files)
                if fd is None:
                    self._gave_up_restoring = True
                    log.warning(
                        "the state files of %s were removed and another run has taken the "
                        "name; this one is reachable by signal only (kill -TERM %d drains it)",
                        files.name,
                        os.getpid(),
                    )
                    return None
                old, self._lock_fd = self._lock_fd, fd
                if old is not None:
                    forget_lock(old)  # its file is gone: the lock on it guarded nothing
            if not files.socket.exists():
                sock = _listen(files)
                server = await asyncio.start_unix_server(
                    self._accept, sock=sock, limit=protocol.MAX_LINE
                )
            self._write_pid_file()
        except Exception as exc:  # a folder that cannot be made again: say so once
            self._gave_up_restoring = True
            log.warning("the state files of %s were removed and cannot be made again: %s",
                        files.name, exc)  # fmt: skip
            return None
        log.warning("the state files of %s were removed; made them again", files.name)
        return server

    def _holds_lock_file(self) -> bool:
        """Whether the name's lock file is the very file this process locked."""
        if self._lock_fd is None:
            return False
        try:
            here, held = os.stat(self.files.lock), os.fstat(self._lock_fd)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except Exception:  # a bug here must not take the control thread down with it
            log.exception("control request failed")
            with contextlib.suppress(Exception):
                await _send(writer, protocol.error_reply("internal error (see the log)"))
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
                await _send(writer, protocol.error_reply("request too long", exit_code=2))
                return
            if not line:
                return
            try:
                request = protocol.parse_request(line, ops=frozenset(self._ops))
            except protocol.BadRequest as exc:
                await _send(writer, protocol.error_reply(exc.message, exc.hint, exc.exit_code))
                continue
            if request.deadline is not None and time.time() > request.deadline:
                # It sat in the socket while this process could not run (SIGSTOP, say):
                # its client has given up, so it is not acted on.
                await _send(writer, protocol.error_reply(*self._late(request.op), 3))
                continue
            try:
                result = await self._ops[request.op](request, writer, reader)
            except RingctlError as exc:
                await _send(writer, protocol.error_reply(exc.message, exc.hint, exc.exit_code))
                continue
            if request.op != "watch":
                await _send(writer, protocol.ok_reply(result))

    def _late(self, op: str) -> tuple[str, str]:
        return (
            f"{op} of {self.files.name!r} not applied: it reached the supervisor after "
            "its client's deadline",
            "try again; ringctl ps NAME shows whether the supervisor is busy",
        )

    def _refused(self, op: str) -> Callable[[], Abandoned]:
        def refused() -> Abandoned:
            loop = self.target.loop_report() or {}
            busy = (
                f"the kernels' loop is blocked ({loop['message']})"
                if loop.get("status") == "blocked"
                else "the kernels' loop did not get to it"
            )
            return Abandoned(
                f"{op} of {self.files.name!r} not applied: {busy} and the client's deadline passed",
                hint="nothing was changed; try again, or give it longer with --wait",
            )

        return refused

    # -- ops -----------------------------------------------------------------------------

    async def _ping(self, *_: object) -> Any:
        t = self.target
        loop = t.loop_report()
        return {
            "name": t.name,
            "pid": os.getpid(),
            "state": t.state,
            "file": t.file,
            "uptime_s": round(t.uptime_s, 3),
            "loop": loop.get("status") if loop else None,
            "applied": t.applied,
        }

    async def _document(self) -> dict[str, Any]:
        """A fresh status if the kernels' loop answers in time, else the last one."""
        assert self._handoff is not None
        fresh, doc = await self._handoff.call(self.target.status, FRESH_WAIT_S)
        t = self.target
        if fresh and doc is not None:
            self.publish(doc)
            return {**doc, "loop": t.loop_report()}
        latest = self._latest
        base: dict[str, Any] = dict(latest[1]) if latest is not None else {
            "name": t.name, "file": t.file, "pid": os.getpid(), "kernels": [], "queues": [],
        }  # fmt: skip
        base.update(
            state=t.state,
            uptime_s=round(t.uptime_s, 3),
            stale_s=round(time.monotonic() - latest[0], 3) if latest is not None else None,
            loop=t.loop_report(),
        )
        return base

    def _handing(self, call: Callable[[Any], Awaitable[Any]]) -> Handler:
        async def handle(request: protocol.Request, *_: object) -> Any:
            return await self._command(request, lambda: call(request.args))

        return handle

    async def _command(self, request: protocol.Request, make: Callable[[], Awaitable[Any]]) -> Any:
        assert self._handoff is not None
        claim = Claim(request.deadline)
        return await self._handoff.run(make, claim, refused=self._refused(request.op))

    async def _down(
        self, request: protocol.Request, writer: asyncio.StreamWriter, *_: object
    ) -> Any:
        args = request.args
        assert isinstance(args, protocol.DownRequest) and self._handoff is not None
        phases: list[dict[str, Any]] = []  # appended on the kernels' loop, read here

        def progress(phase: dict[str, Any]) -> None:
            phases.append(phase)
            del phases[:-1]

        claim = Claim(request.deadline)

        async def pump() -> None:
            while True:
                await asyncio.sleep(PROGRESS_EVERY_S)
                if not claim.started:
                    continue
                last = phases[-1] if phases else {"name": "drain", "waiting_on": []}
                await _send(writer, protocol.event("progress", last))
                phases.clear()

        self.target.stop_within(args.timeout)  # holds even if the loop never takes the down
        pumper = asyncio.create_task(pump())
        try:
            return await self._handoff.run(
                lambda: self.target.down(args.timeout, progress),
                claim,
                refused=self._refused("down"),
            )
        finally:
            pumper.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await pumper

    async def _watch(
        self, request: protocol.Request, writer: asyncio.StreamWriter, *_: object
    ) -> Any:
        args = request.args
        assert isinstance(args, protocol.WatchRequest)
        given = "interval" in args.model_fields_set
        interval = max(0.05, args.interval if given else self.watch_interval)
        while True:
            ended = self.target.ended  # read first: the document after it is the final one
            await _send(writer, protocol.event("status", await self._document()))
            if ended:
                await _send(writer, protocol.event("end", {"state": self.target.state}))
                return None
            waited = 0.0
            while waited < interval and not self.target.ended:
                step = min(0.05, interval - waited)
                await asyncio.sleep(step)
                waited += step

    async def _apply(self, request: protocol.Request, *_: object) -> Any:
        """Diff (and unless ``dry_run``, carry out) the edited file; each apply that
        changed something is added to the history ``ringctl ps -a`` shows."""
        from ringctl.control.history import record_apply

        args = request.args
        assert isinstance(args, protocol.ApplyRequest)
        result = await self._command(
            request, lambda: self.target.apply(args.file, args.dry_run, args.timeout)
        )
        if not args.dry_run and result.get("changed"):
            entry = {"name": self.files.name, "file": args.file, "at": result.get("at"),
                     "changes": result.get("done"), "left": result.get("left")}  # fmt: skip
            try:
                await asyncio.to_thread(record_apply, self.files, entry)
            except OSError as exc:
                log.warning("cannot record the apply: %s", exc)
        return result

    async def _tap(
        self, request: protocol.Request, writer: asyncio.StreamWriter, reader: asyncio.StreamReader
    ) -> Any:
        """Attach on the kernels' loop, stream from here, detach on the kernels' loop."""
        args = request.args
        assert isinstance(args, protocol.TapRequest) and self._handoff is not None
        target, handoff = self.target, self._handoff

        async def attach() -> Any:
            return target.tap(args.kernel, args.port)

        tap = await self._command(request, attach)
        try:
            return await serve_tap(
                tap, args.kernel, args.port, args.count, lambda: target.ended, writer, reader
            )
        finally:
            await handoff.call(lambda: target.untap(args.kernel, args.port, tap), 5.0)


def _listen(files: TopologyFiles) -> socket.socket:
    """The listening socket, born 0600 so that nobody else can ever connect to it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(files.socket))
        finally:
            os.umask(old_umask)
        files.socket.chmod(0o600)
        sock.listen(100)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def _send(writer: asyncio.StreamWriter, document: dict[str, Any]) -> None:
    writer.write(protocol.encode(document))
    await writer.drain()
