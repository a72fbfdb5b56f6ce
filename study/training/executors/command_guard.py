"""The guard of one `command:` trial: runs the command and makes its whole process group die with the worker.

    python -I -S command_guard.py WORKER_PID -- ARGV...

Started by the command executor as the leader of a new session and process group; the command
(and anything it starts) runs inside that group. If the worker dies, even by SIGKILL, the kernel
sends this guard SIGHUP (Linux: PR_SET_PDEATHSIG) and the guard kills the group; where that is not
available, it notices within a second that its parent changed. Either way no process of the trial
outlives the worker. Why a guard and not the death signal on the command alone: the signal reaches
only the process it was set on, and a command is often a launcher (`sh -c`, `uv run`, a script that
starts data loaders) whose children would be left running. Exits with the command's status (128 + N
when a signal N ended it, saying so on stderr). Standard library only: it starts in milliseconds.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
POLL_S = 1.0


def kill_group(*_: object) -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)  # this guard too: nothing of the trial is left


def watch_parent(worker: int) -> None:
    """SIGHUP when the worker dies (Linux); the caller also polls getppid() everywhere."""
    signal.signal(signal.SIGHUP, kill_group)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGHUP)
    except (OSError, AttributeError):
        pass  # not Linux: the poll below notices within POLL_S
    if os.getppid() != worker:  # the worker died before the death signal was armed
        kill_group()


def main(argv: list[str]) -> int:
    worker, separator, command = int(argv[0]), argv[1], argv[2:]
    assert separator == "--" and command, "usage: command_guard.py WORKER_PID -- ARGV..."
    watch_parent(worker)
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, signal.SIG_IGN)  # the executor stops the whole group; the guard waits for the command
    try:
        child = subprocess.Popen(command, preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL)
                                                               for s in (signal.SIGTERM, signal.SIGINT)])
    except OSError as exc:
        print(f"cannot start {command[0]!r}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 127
    while True:
        try:
            code = child.wait(timeout=POLL_S)
            break
        except subprocess.TimeoutExpired:
            if os.getppid() != worker:
                kill_group()
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        print(f"the command was ended by signal {name}", file=sys.stderr, flush=True)
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
