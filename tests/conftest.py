"""Settings for the whole suite."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Commands the tests run keep their compiled-schema cache in a folder of this run, not in
# the user's ~/.cache (subprocesses inherit it).
_CACHE = tempfile.mkdtemp(prefix="ringctl-test-cache-")
os.environ["RINGCTL_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
