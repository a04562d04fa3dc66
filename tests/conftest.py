"""Settings for the whole suite."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# Commands the tests run keep their compiled-schema cache in a folder of this run, not in
# the user's ~/.cache (subprocesses inherit it).
_CACHE = tempfile.mkdtemp(prefix="ringctl-test-cache-")
os.environ["RINGCTL_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

# Runs a test starts without naming a state folder of its own are kept in one of this
# process, not in the user's: the suite runs in several processes at once (`make test`),
# and a run of one must not show in `ringctl ps` of another, nor take its name.
_STATE = tempfile.mkdtemp(prefix="rc-state-", dir="/tmp")  # control sockets want short paths
os.environ["RINGCTL_STATE_DIR"] = _STATE
atexit.register(shutil.rmtree, _STATE, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every Ray test joins one Ray head per process: with pytest-xdist's `--dist loadgroup`
    # they all go to one worker, so the suite starts one head, not one per worker.
    for item in items:
        if item.get_closest_marker("ray") is not None:
            item.add_marker(pytest.mark.xdist_group("ray"))
