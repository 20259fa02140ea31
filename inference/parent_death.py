"""`python -I inference/parent_death.py PARENT_PID COMMAND...`: run COMMAND so that it dies with process PARENT_PID.

The service used to set the parent-death signal in a `preexec_fn`, which runs Python (and a dlopen, through
ctypes) in the forked child of a multi-threaded process: Python documents that as a deadlock risk. Here the
signal is set in a fresh, single-threaded interpreter, which then becomes COMMAND (execve keeps the setting).
Linux sends the signal when the *thread* that forked us ends, so `inference.processes.spawn_child` forks from
one thread that lives as long as the service. Elsewhere than Linux, COMMAND just runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    """Set the parent-death signal, check the parent is still there, become the command."""
    parent, command = int(argv[0]), argv[1:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            raise SystemExit(f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}")
        if os.getppid() != parent:  # the parent died before the signal was set: nobody would send it
            raise SystemExit(f"parent {parent} is gone")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
