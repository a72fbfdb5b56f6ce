"""Your own training code as a trial: `train: package.module:function` or `command: "python train.py ..."`.

Two config fields name the code (`train`, `command`); the `executor` field says which form a trial
uses (`function` or `command`, set by the spec from the key it names), so the queue, the registry
and the records treat user code like any other executor. Both fields default to None and were
added after key version 1, so they enter a trial key only when set: no stored key changes.

The command is split like a shell line (shlex) and each word is formatted with the trial's config
(`{learning_rate}`, `{seed}`, a declared hyperparameter `{alpha}`); it runs without a shell, so a
value with spaces stays one argument. Nothing here imports the user's code: that is checked where
it runs (study.training.user_code_check).
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Iterable, Mapping
from typing import Any

from study.config.user_model import LESSON_MODEL, REFERENCE

FUNCTION_EXECUTOR = "function"
COMMAND_EXECUTOR = "command"
# executor name -> the config field that names the code it runs
CODE_FIELDS = {FUNCTION_EXECUTOR: "train", COMMAND_EXECUTOR: "command"}


def train_problem(value: object) -> str | None:
    """Why `value` cannot name a training function (None if it can); whether it imports is checked where it runs."""
    if isinstance(value, str) and REFERENCE.match(value):
        return None
    return f"{value!r} is not allowed; name your training function as package.module:function"


def placeholders(command: str) -> list[str]:
    """The config names a command template uses, in order (`{learning_rate}` -> learning_rate); ValueError if
    the template is not a shell-like line of words with `{name}` placeholders."""
    words = shlex.split(command)
    names = []
    for word in words:
        for _, name, _, _ in string.Formatter().parse(word):
            if name is None:
                continue
            if not name.isidentifier():
                raise ValueError(f"placeholder {{{name}}} must be a config field or hyperparameter name, "
                                 "e.g. {learning_rate} (write {{ and }} for literal braces)")
            names.append(name)
    return names


def command_problem(value: object) -> str | None:
    """Why `value` cannot be a command template (None if it can); unknown placeholder names are the spec's
    check (it knows the declared hyperparameters)."""
    if not isinstance(value, str) or not value.strip():
        return f"{value!r} must be a command line, e.g. \"python train.py --lr {{learning_rate}} --seed {{seed}}\""
    try:
        placeholders(value)
    except ValueError as exc:
        return f"{value!r} is not a command line: {exc}"
    return None


def render_command(command: str, values: Mapping[str, Any]) -> list[str]:
    """The argv of one trial: each word of the template formatted with the trial's values."""
    return [word.format_map(values) for word in shlex.split(command)]


def unknown_placeholders(command: str, names: Iterable[str]) -> list[str]:
    """The placeholders of `command` that name no field or hyperparameter among `names`."""
    known = set(names)
    return sorted({name for name in placeholders(command) if name not in known})


def own_code(config: Any) -> bool:
    """Whether the trial runs the user's training code (a function or a command) rather than a Keras executor."""
    return config.executor in CODE_FIELDS


def code_of(config: Any) -> str:
    """What trains `config`: the function reference, the command template, or the model builder."""
    return getattr(config, CODE_FIELDS[config.executor]) if own_code(config) else config.model


def code_problem(config: Any) -> str | None:
    """Cross-field rules of user code on one complete config (None if it keeps them)."""
    if config.train is not None and config.command is not None:
        return "train and command are two ways to run your code: set one of them"
    for executor, name in CODE_FIELDS.items():
        if getattr(config, name) is not None and config.executor != executor:
            return f"{name} runs with executor {executor} (the spec sets it), not {config.executor}"
        if config.executor == executor and getattr(config, name) is None:
            return f"executor {executor} needs {name}: the code it runs"
    if own_code(config) and config.model != LESSON_MODEL:
        return (f"model {config.model} is a Keras builder the framework trains; {CODE_FIELDS[config.executor]} "
                "code trains itself: set one of them")
    return None
