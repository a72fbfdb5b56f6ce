"""`study ui`'s process: MLflow's server as one process tree that stops as a whole.

`mlflow ui` passes SIGTERM to its uvicorn server only. Its job runner and the huey
consumers that runner starts outlived it (reparented to init), and `mlflow ui` itself
waited on them for minutes; a SIGTERM that came while it started left uvicorn without a
parent. So `study ui` starts the server in a session (process group) of its own, stays
its parent, and sends every stopping signal (SIGINT, SIGTERM, SIGHUP) to the whole
group; what is still there after a grace period is killed. A service manager's SIGTERM
and a terminal's Ctrl-C therefore end the same way: nothing left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from study.core.errors import EXIT_OK

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_S = 10.0  # uvicorn's workers and the job consumers stop within about 1 s of SIGTERM here


def serve(command: list[str], grace_s: float = GRACE_S) -> int:
    """Run `command` (the MLflow server) until it ends or a signal stops us; return its exit code,
    or 0 when a signal stopped it (a server asked to stop has done its job)."""
    received: list[int] = []
    group: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        if group:  # a second signal: kill at once
            _signal_group(group[0], signum if len(received) == 1 else signal.SIGKILL)

    previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
    try:
        proc = subprocess.Popen(command, start_new_session=True)
        group.append(proc.pid)  # its own session: the group id is its pid
        if received:  # a signal came while it was starting
            _signal_group(proc.pid, received[0])
        deadline = None
        while proc.poll() is None:
            if received and deadline is None:
                deadline = time.monotonic() + grace_s
            if deadline is not None and time.monotonic() > deadline:
                _signal_group(proc.pid, signal.SIGKILL)
            time.sleep(0.2)
        _stop_group(proc.pid, grace_s)  # whatever the server left behind (job runner, consumers)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        print(f"{signal.Signals(received[0]).name}: the MLflow UI and every process it started are stopped", flush=True)
        return EXIT_OK
    return proc.returncode


def _stop_group(pgid: int, grace_s: float) -> None:
    """SIGTERM to every process left in group `pgid`, SIGKILL to those still there after `grace_s`."""
    if not _group_alive(pgid):
        return
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            _signal_group(pgid, signal.SIGKILL)
            return
        time.sleep(0.2)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """Whether a process (not a zombie) is in group `pgid`. /proc where there is one: an orphan
    that exited stays a zombie until init reaps it, and a container's init may never do so."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False
