"""A study's own training code, checked before anything is created (exit 2, naming the spec's key).

`train:` must import (from the working directory or PYTHONPATH), name a function, and take
(config, reporter); `command:` must start with a program this machine can run. The launching
process checks every distinct one among the trials; each worker checks its base again when it
starts (a worker on another machine may lack the module or the program). The user's module is
imported after the spec's backend is named in the environment, so code that uses Keras gets it.
"""

from __future__ import annotations

import inspect
import os
import shutil
from collections.abc import Iterable

from study.config import TrialConfig
from study.config.user_code import own_code
from study.core.errors import SpecError
from study.training.backend import name_backend
from study.training.builders import ModelError, resolve
from study.training.executors.command_executor import PYTHONS, command_argv


def check_code(configs: Iterable[TrialConfig], source: str) -> list[str]:
    """Check each distinct training function and command among `configs`; return what was checked."""
    checked: dict[str, None] = {}
    for config in configs:
        if not own_code(config):
            continue
        if config.train is not None and config.train not in checked:
            name_backend(config.backend)
            function_check(config.train, source)
            checked[config.train] = None
        if config.command is not None and config.command not in checked:
            command_check(config, source)
            checked[config.command] = None
    return list(checked)


def function_check(reference: str, source: str) -> None:
    try:
        function = resolve(reference)
    except ModelError as exc:
        raise SpecError(source, "train", str(exc)) from exc
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # a builtin or extension function: it will say so when called
    try:
        signature.bind(None, None)
    except TypeError:
        raise SpecError(source, "train", f"{reference} takes {signature}; it is called as "
                                         f"{reference.partition(':')[2]}(config, reporter)") from None


def command_check(config: TrialConfig, source: str) -> None:
    program = command_argv(config)[0] if config.command.split() else ""
    if not program:
        raise SpecError(source, "command", "is empty: give the command line that trains one trial")
    if program in PYTHONS or os.sep in program and os.access(program, os.X_OK) or shutil.which(program):
        return
    raise SpecError(source, "command", f"{program!r} is not a program on this machine's PATH (nor an executable "
                                       "path); e.g. python train.py --lr {learning_rate}")
