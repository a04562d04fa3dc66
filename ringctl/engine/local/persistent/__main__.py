"""``python -m ringctl.engine.local.persistent FD``: a worker process (started by
``WorkerProcess``)."""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection

if __name__ == "__main__":
    # Ctrl-C in a terminal reaches the whole process group: it is the supervisor's to
    # answer (a graceful drain that stops these loops through their control blocks).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ringctl.engine.local.persistent.worker import worker_main

    worker_main(Connection(int(sys.argv[1])))
