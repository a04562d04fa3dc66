"""``python -m ringctl.persistent FD``: a worker process (started by ``WorkerProcess``)."""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection

from ringctl.persistent.worker import worker_main

if __name__ == "__main__":
    worker_main(Connection(int(sys.argv[1])))
