"""Worker processes that end when their parent does, however it ends (SIGKILL included).

A worker of ``--workers N`` calls :func:`die_with_parent` first thing. On Linux the kernel then sends
it SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``); everywhere, a daemon thread also looks
every :data:`POLL_SECONDS` whether the process has been handed to another parent (the parent is
gone) and ends it. With the workers gone, the last holders of the pipe of multiprocessing's resource
tracker are gone too, so the tracker sees its end of file and exits as well.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

#: ``prctl`` option: the signal the process gets when its parent dies (``<linux/prctl.h>``).
PR_SET_PDEATHSIG = 1
#: Seconds between two looks at the parent's pid by the fallback thread.
POLL_SECONDS = 0.5


def _set_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while True:
        time.sleep(POLL_SECONDS)
        if os.getppid() != parent_pid:
            os._exit(1)


def die_with_parent(parent_pid: int) -> None:
    """End this process when the process ``parent_pid`` (its parent) ends; at once if it already has."""
    _set_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the death signal was set
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="deepcut-parent-watch", daemon=True).start()
