"""One Ray head for the whole test session, shared by in-process tests and CLI runs.

Starting Ray costs about ten seconds on a 2-core machine, so the session starts one head
(``ray start --head --block`` as our own child, in a private temp dir, on loopback) and
every test joins it: in-process through ``ray.init(address=...)`` (once, by the
``ray_session`` fixture), CLI subprocesses through ``--address``. At the end the
``--block`` process is asked to stop (it takes the head's processes with it); we never
run ``ray stop``, which would also stop Ray clusters this session did not start.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOPOLOGIES = REPO / "topologies"
RAY_BIN = Path(sys.executable).with_name("ray")

#: Ray's environment for every process of the session: no usage reporting, and no token
#: authentication (an explicit ``--address`` only sends a token with RAY_AUTH_MODE=token).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}

HAVE_RAY = importlib.util.find_spec("ray") is not None

if str(REPO) not in sys.path:  # `kernels` is not installed; topologies reach it by path
    sys.path.insert(0, str(REPO))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(head: subprocess.Popen[bytes]) -> None:
    """SIGTERM the ``--block`` process (it stops the head), then kill what is left."""
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGKILL)  # its own session: only processes we started
    with contextlib.suppress(subprocess.TimeoutExpired):
        head.wait(timeout=5)


@pytest.fixture(scope="session")
def ray_head() -> Iterator[str]:
    """The address (``127.0.0.1:PORT``) of a Ray head started for this session."""
    if not HAVE_RAY:
        pytest.skip("ray is not installed (pip install 'ringctl[ray]')")
    saved = {key: os.environ.get(key) for key in RAY_ENV}
    os.environ.update(RAY_ENV)  # inherited by ray.init here and by every CLI subprocess
    tmp = tempfile.mkdtemp(prefix="rc-ray-", dir="/tmp")  # Ray's socket paths must be short
    port = _free_port()
    log_path = Path(tmp) / "head.log"
    with open(log_path, "wb") as log:
        # fmt: off
        args = [str(RAY_BIN), "start", "--head", "--block", "--num-cpus=4",
                "--disable-usage-stats", "--include-dashboard=false", f"--temp-dir={tmp}",
                f"--port={port}", "--node-ip-address=127.0.0.1"]
        # fmt: on
        head = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **RAY_ENV},
        )
    try:
        deadline = time.monotonic() + 90
        while b"Ray runtime started" not in log_path.read_bytes():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start failed:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(head)
        shutil.rmtree(tmp, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def ray_session(ray_head: str) -> Iterator[str]:
    """This process joined to the session's head (a process can ``ray.init`` only once)."""
    import ray

    # No runtime_env: each KernelHost puts the driver's search path on its own sys.path.
    ray.init(address=ray_head, logging_level="WARNING")
    try:
        yield ray_head
    finally:
        ray.shutdown()
