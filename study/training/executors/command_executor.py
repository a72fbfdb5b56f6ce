"""The command executor: `command: "python train.py --lr {learning_rate} --seed {seed}"`, a process per trial.

The command runs with the trial's MLflow run in its environment (MLFLOW_RUN_ID, MLFLOW_TRACKING_URI,
MLFLOW_EXPERIMENT_ID), so the script's own `mlflow.log_metric(...)` lands in the trial's run, and
with the whole config as JSON in STUDY_TRIAL_CONFIG. `python`/`python3` as its first word is the
worker's own interpreter (the one that has mlflow installed). While it runs, the executor reads the
run's metrics every `poll_s` and feeds each finished step to the trial's hooks (Optuna's pruner: a
pruned command is stopped); the final metrics are the run's latest values once it exits
(study.training.user_results maps them). A non-zero exit is a failed trial: its last lines are the
error (the run's `error` tag, the progress line) and its output is the run's `command.log`.

Each command runs under a guard (study.training.executors.command_guard) in its own session and
process group: a stop request ends the group (SIGTERM, then SIGKILL after `grace_s`), and a worker
that dies, even by SIGKILL, takes the group with it; the queue then re-queues the trial.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from study.config import TrialConfig
from study.config.user_code import render_command
from study.core.errors import Interrupted
from study.tracking.trial_run import TrialRun
from study.training.executors.base import Batch, ExecutionSettings, TrialHooks
from study.training.results import TrialResult
from study.training.user_results import is_final_only, user_result

GUARD = Path(__file__).with_name("command_guard.py")
CONFIG_ENV = "STUDY_TRIAL_CONFIG"
OUTPUT_ARTIFACT = "command.log"
COMMAND_TAG = "command_line"
PYTHONS = ("python", "python3")


class CommandFailed(RuntimeError):
    """The command exited with a non-zero status; the message ends with its last lines."""


class CommandExecutor:
    """Runs the spec's command once per trial of a batch, in turn, each in its own process group."""

    name = "command"
    bit_identical_to_keras = False
    logs_own_epochs = True  # the script logs its epochs to the run itself: the tracked path must not log them again
    poll_s = 1.0
    grace_s = 10.0
    tail_lines = 15

    def run(self, batch: Batch, settings: ExecutionSettings) -> list[TrialResult]:
        if len(batch.run_ids) != len(batch.configs):
            raise RuntimeError("the command executor needs each trial's MLflow run (study.execution.tracked)")
        results = []
        for index, (config, hooks, run_id) in enumerate(zip(batch.configs, batch.hooks, batch.run_ids)):
            if batch.stop.is_set():
                raise Interrupted()
            workdir = batch.workdir / f"trial-{index}"
            workdir.mkdir(parents=True, exist_ok=True)
            results.append(self.trial(config, hooks, run_id, batch.stop, workdir))
        return results

    def trial(self, config: TrialConfig, hooks: TrialHooks, run_id: str, stop: threading.Event,
              workdir: Path) -> TrialResult:
        run = TrialRun(run_id)
        argv = command_argv(config)
        run.set_tag(COMMAND_TAG, shlex.join(argv)[:5000])
        output = workdir / OUTPUT_ARTIFACT
        feed = EpochFeed(run, hooks)
        started = time.perf_counter()
        with output.open("wb") as out, self._process(argv, trial_env(config, run), out) as process:
            while process.poll() is None:
                if stop.wait(self.poll_s):
                    break
                if feed.poll(final=False):
                    break
        seconds = time.perf_counter() - started
        run.reopen()  # the script's mlflow may have ended the run: it is ours to record
        run.log_artifact(tail_file(output, workdir / "tail" / OUTPUT_ARTIFACT))
        if not stop.is_set() and not feed.pruned:
            feed.poll(final=True)
        if stop.is_set():
            raise Interrupted()
        if process.returncode != 0 and not feed.pruned:
            raise CommandFailed(failure(argv, process.returncode, output, self.tail_lines))
        returned = feed.latest() if not feed.pruned else {k: v[-1] for k, v in feed.history.items() if v}
        return user_result(config, returned, feed.history, seconds, feed.pruned, f"the command `{config.command}`")

    @contextmanager
    def _process(self, argv: list[str], env: dict[str, str], out) -> Iterator[subprocess.Popen]:
        """The guarded command; its whole process group is ended when the block is left early."""
        process = subprocess.Popen([sys.executable, "-I", "-S", str(GUARD), str(os.getpid()), "--", *argv],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
        try:
            yield process
        finally:
            if process.poll() is None:
                stop_group(process, self.grace_s)


def command_argv(config: TrialConfig) -> list[str]:
    argv = render_command(config.command, config.values())
    if argv and argv[0] in PYTHONS:
        argv[0] = sys.executable
    return argv


def trial_env(config: TrialConfig, run: TrialRun) -> dict[str, str]:
    """The worker's environment plus the trial's run (where the script's mlflow logs) and config."""
    return {**os.environ, **run.env(), CONFIG_ENV: json.dumps(config.values(), default=str)}


def stop_group(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the command's process group, SIGKILL it if it is still there after `grace_s`."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            if sig == signal.SIGKILL:
                return
        except subprocess.TimeoutExpired:
            continue
    try:  # the guard is gone; its group may still hold a process that ignored SIGTERM
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def tail_file(path: Path, target: Path, max_bytes: int = 1_000_000) -> Path:
    """The command's output as the run keeps it: all of it, or its last `max_bytes`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    data = path.read_bytes()
    target.write_bytes(data[-max_bytes:])
    return target


def failure(argv: list[str], code: int, output: Path, lines: int) -> str:
    """`the command exited with status 1: ValueError: boom`, the command line, then the output's last lines."""
    text = output.read_bytes()[-20_000:].decode(errors="replace").rstrip().splitlines()[-lines:]
    last = next((line.strip() for line in reversed(text) if line.strip()), "no output")
    return (f"the command exited with status {code}: {last}\ncommand: {shlex.join(argv)[:1000]}\n"
            f"its last {len(text)} lines:\n" + "\n".join(text))


class EpochFeed:
    """The steps the script logged to its run, fed to the trial's hooks as they complete."""

    def __init__(self, run: TrialRun, hooks: TrialHooks) -> None:
        self.run, self.hooks = run, hooks
        self.history: dict[str, list[float]] = {}
        self.fed = -1  # the last step fed
        self.pruned = False

    def steps(self) -> dict[int, dict[str, float]]:
        """The run's per-epoch metrics by step: every metric but those that only a final result has."""
        return self.run.steps(skip=is_final_only)

    def poll(self, final: bool) -> bool:
        """Feed the steps logged since the last poll (the newest only once the script has exited: it may
        still be logging it); True when a hook stopped the trial."""
        by_step = self.steps()
        ready = sorted(s for s in by_step if s > self.fed)
        if not final:
            ready = ready[:-1]
        last = max(by_step, default=-1) if final else None
        for step in ready:
            logs = by_step[step]
            for name, value in logs.items():
                self.history.setdefault(name, []).append(value)
            self.fed = step
            self.hooks.on_epoch_end(step, logs)
            if step != last and self.hooks.should_stop(step, logs):  # the last epoch is never asked (TrialHooks)
                self.pruned = True
                return True
        return False

    def latest(self) -> dict[str, float]:
        """The run's metrics as the script left them: each one's value at its latest step."""
        return self.run.latest()
