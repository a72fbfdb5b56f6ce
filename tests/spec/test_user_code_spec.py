"""`train:` and `command:` in a spec: the executor they imply, and every misuse refused naming its key (exit 2).

The import and signature of a function and the program of a command are checked where the code would run
(study.training.user_code_check), before anything is created; the CLI tests check the exit status and the
one line (tests/execution/test_own_code_cli.py)."""

from __future__ import annotations

import pytest

from study.core.errors import SpecError
from study.spec.study_spec import parse_spec
from study.spec.tune_spec import parse_tune_spec
from study.training.user_code_check import check_code

TRAIN = "tests.training.own_code:train"
COMMAND = "python train.py --lr {learning_rate} --alpha {alpha} --seed {seed}"
ALPHA = {"alpha": {"type": "float", "low": 0.0, "default": 0.1}}


def spec(**keys):
    return {"name": "own", "hyperparameters": ALPHA, "factors": {"learning_rate": [0.01, 0.1]}, **keys}


def test_train_and_command_imply_their_executor_and_enter_the_key():
    function = parse_spec(spec(train=TRAIN))
    command = parse_spec(spec(command=COMMAND))
    assert (function.base.executor, function.base.train) == ("function", TRAIN)
    assert (command.base.executor, command.base.command) == ("command", COMMAND)
    keys = {t.key for t in function.trials()} | {t.key for t in command.trials()}
    assert len(keys) == 4, "the code is part of the trial's identity"
    tune = parse_tune_spec({"name": "t", "train": TRAIN, "hyperparameters": ALPHA,
                            "search_space": {"alpha": {"low": 0.0, "high": 1.0}}})
    assert tune.base.executor == "function"
    assert check_code([function.base], "own.yaml") == [TRAIN]


@pytest.mark.parametrize("keys, key, words", [
    ({"train": TRAIN, "command": COMMAND}, "command", "train and command are two ways to run your code"),
    ({"train": TRAIN, "model": "examples.small_cnn:build"}, "model", "set one of them"),
    ({"command": COMMAND, "executor": "fused"}, "executor", "fused cannot run command: code; leave executor out"),
    ({"train": "examples.sklearn_mlp"}, "train", "name your training function as package.module:function"),
    ({"command": "python train.py --lr {lr}"}, "command", "placeholder {lr} names no config field nor declared "
                                                          "hyperparameter; allowed: {activation}, {alpha},"),
    ({"command": "python 'train.py"}, "command", "is not a command line: No closing quotation"),
    ({"command": ""}, "command", "must be a non-empty string"),
    ({"hyperparameters": ALPHA}, "hyperparameters", "or your own training code (train:, command:) uses them"),
])
def test_a_misused_code_key_is_refused_naming_it(keys, key, words):
    raw = spec(**keys)
    if "hyperparameters" in keys:
        raw["factors"] = {"alpha": [0.1, 0.2]}
    with pytest.raises(SpecError) as error:
        parse_spec(raw, source="own.yaml")
    assert error.value.key == key and words in str(error.value), str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("reference, words", [
    ("no_such_module_here:train", "cannot import 'no_such_module_here'"),
    ("tests.training.own_code:missing", "has no 'missing'"),
    ("tests.training.own_code:three_arguments", "takes (config, reporter, extra); it is called as "
                                                "three_arguments(config, reporter)"),
])
def test_a_function_that_cannot_be_called_is_refused_before_anything_runs(reference, words):
    base = parse_spec(spec(train=reference)).base
    with pytest.raises(SpecError) as error:
        check_code([base], "own.yaml")
    assert error.value.key == "train" and words in str(error.value), str(error.value)


def test_a_command_whose_program_is_not_here_is_refused():
    base = parse_spec(spec(command="no-such-trainer --lr {learning_rate}")).base
    with pytest.raises(SpecError, match="command: 'no-such-trainer' is not a program on this machine's PATH"):
        check_code([base], "own.yaml")
    assert check_code([parse_spec(spec(command=COMMAND)).base], "own.yaml") == [COMMAND]  # python: the worker's own
