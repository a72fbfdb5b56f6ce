"""`train:` and `command:` in a spec: which executor they imply, and the rules a spec must keep with them.

A spec names its code with one key; the executor follows from it (`function` for `train:`,
`command` for `command:`), so a spec never sets both. Each problem is one SpecError naming the key
(exit 2): both set, combined with a `model:` of your own or another executor, a placeholder of the
command that names no field nor declared hyperparameter. Whether the function imports and takes
(config, reporter) is checked where it runs (study.training.user_code_check), as a model builder is.
"""

from __future__ import annotations

from typing import Any

from study.config import LESSON_MODEL, TrialConfig
from study.config.user_code import CODE_FIELDS, unknown_placeholders
from study.core.errors import SpecError


def code_executor(source: str, values: dict[str, Any]) -> dict[str, Any]:
    """The base's values with the executor its code implies (`train:` -> function, `command:` -> command)."""
    named = [name for name in CODE_FIELDS.values() if values.get(name) is not None]
    if not named:
        return values
    if len(named) > 1:
        raise SpecError(source, "command", "train and command are two ways to run your code: set one of them")
    name = named[0]
    executor = next(e for e, field in CODE_FIELDS.items() if field == name)
    if values.get("model", LESSON_MODEL) != LESSON_MODEL:
        raise SpecError(source, "model", f"is a Keras builder the framework trains, and {name}: is code that trains "
                                         "itself: set one of them")
    if "executor" in values and values["executor"] != executor:
        raise SpecError(source, "executor", f"{values['executor']} cannot run {name}: code; leave executor out "
                                            f"({name}: runs with executor {executor})")
    return {**values, "executor": executor}


def check_code(source: str, base: TrialConfig) -> None:
    """A command's placeholders must name a config field or a declared hyperparameter."""
    if base.command is None:
        return
    names = sorted(base.values())
    unknown = unknown_placeholders(base.command, names)
    if unknown:
        raise SpecError(source, "command", f"placeholder {{{unknown[0]}}} names no config field nor declared "
                                           f"hyperparameter; allowed: {', '.join('{' + n + '}' for n in names)}")
