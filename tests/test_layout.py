"""The codebase's shape: layered packages without import cycles, small modules, stable trial keys."""

from __future__ import annotations

import ast
import hashlib
import itertools
import re

from study.config import FACTORS, TrialConfig
from tests.conftest import ROOT

PACKAGE = ROOT / "study"
MAX_LINES = 400


def import_graph() -> dict[str, set[str]]:
    """Module -> the study modules it imports, counting imports inside functions and TYPE_CHECKING blocks."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join((package[: len(package) - node.level + 1] if node.level else [])
                                + ([node.module] if node.module else []))
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for name in names:
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name and name != module and not module.startswith(name + "."):
                    graph[module].add(name)
    return graph


def test_no_import_cycles_even_inside_functions():
    graph = import_graph()

    def reaches(start: str, goal: str) -> bool:
        stack, seen = [start], set()
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(graph[node])
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert not cycles, cycles


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_lower_layers_never_import_higher_ones():
    """core < data < config < spec < queue < tracking < training < tuning < analysis < execution < report < lesson
    < cli."""
    order = ["core", "data", "config", "spec", "queue", "tracking", "training", "tuning", "analysis", "execution",
             "report", "lesson", "cli"]
    rank = {name: i for i, name in enumerate(order)}
    wrong = []
    for module, targets in import_graph().items():
        layer = module.split(".")[1] if "." in module else None
        for target in targets:
            other = target.split(".")[1] if "." in target else None
            if layer in rank and other in rank and rank[other] > rank[layer]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


LESSON_NAMES = re.compile(r"\b(LESSON_FIRST_MODEL|LESSON_CONDITION|LESSON_EPOCHS|lesson_claims)\b|(?<!study)\.lesson\b")


def test_the_lesson_is_a_companion_the_core_never_special_cases():
    """The lesson's content lives in study/lesson/ behind study.analysis.companion: no other module imports it
    (the CLI's `synthesize` command aside), names its constants, or asks a spec or context `.lesson`; only the
    spec reads its `lesson:` key, and the core registry names it as a built-in companion."""
    lesson, cli, spec = PACKAGE / "lesson", PACKAGE / "cli", PACKAGE / "spec" / "study_spec.py"
    imports = sorted(f"{path.relative_to(ROOT)}: {name}" for path in PACKAGE.rglob("*.py")
                     if lesson not in path.parents and cli not in path.parents
                     for name in imported_modules(path) if name == "study.lesson" or name.startswith("study.lesson."))
    assert not imports, imports
    special = sorted(f"{path.relative_to(ROOT)}:{number}: {line.strip()}" for path in PACKAGE.rglob("*.py")
                     if lesson not in path.parents and cli not in path.parents
                     and path not in (spec, PACKAGE / "analysis" / "companion.py")
                     for number, line in enumerate(path.read_text().splitlines(), 1)
                     if LESSON_NAMES.search(line.split("#")[0]) and not line.lstrip().startswith(("#", '"', "-")))
    assert not special, special


def imported_modules(path) -> set[str]:
    """Every module a file imports (absolute names), counting imports inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_mlflow_is_imported_only_by_the_tracking_package():
    """study/tracking/ owns MLflow: every other layer calls its functions (plain frames and dataclasses back)."""
    owner = PACKAGE / "tracking"
    wrong = sorted(f"{path.relative_to(ROOT)}: {name}" for path in PACKAGE.rglob("*.py") if owner not in path.parents
                   for name in imported_modules(path) if name == "mlflow" or name.startswith("mlflow."))
    assert not wrong, wrong


FILTER_SYNTAX = re.compile(r"\b(tags|attributes|params|metrics)\.[\w{}.]+\s*(=|!=|<|>|LIKE|ILIKE|IN)\s*'")


def test_mlflow_filter_strings_are_written_by_one_helper():
    """A search filter is built by study.tracking.filters.run_filter only (no hand-quoted `tags.x = '...'`)."""
    helper = PACKAGE / "tracking" / "filters.py"
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        if path == helper:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            parts = node.values if isinstance(node, ast.JoinedStr) else [node]
            text = "{}".join(p.value for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str))
            if isinstance(node, (ast.JoinedStr, ast.Constant)) and FILTER_SYNTAX.search(text):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not wrong, wrong


def imported_packages(path) -> set[str]:
    """Top-level names of every package a module imports (at module level, inside functions, anywhere)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.partition(".")[0])
    return names


def test_optuna_is_imported_only_by_the_queue_and_tuning():
    """Optuna is the RDB queue's storage and the tuner's sampler; every other layer sees the queue's own
    records (study.queue.records), so a second queue backend needs no Optuna."""
    allowed = (PACKAGE / "queue", PACKAGE / "tuning")
    wrong = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                   if "optuna" in imported_packages(p) and not p.is_relative_to(allowed[0])
                   and not p.is_relative_to(allowed[1]))
    assert not wrong, wrong
    assert "optuna" in imported_packages(PACKAGE / "queue" / "trial_queue.py"), "the check must see an import"


# --------------------------------------------------------------------------- trial keys

LESSON_GRID_V1 = {"activation": ["sigmoid", "relu"], "init": ["normal", "xavier", "he"], "batch_norm": [False, True],
                  "dropout": [0.0, 0.2], "optimizer": [("sgd", 0.01), ("adam", 0.001)],
                  "schedule": ["constant", "plateau", "warmup_cosine"]}
# sha256 over the 432 keys of the lesson grid as first run (Intel Xeon, report of 2026-11-28): any change to
# how keys are computed would make every stored trial look new, so resume would train the grid again.
LESSON_GRID_V1_KEYS_SHA256 = "e86a432439b4d157"


def lesson_grid_v1_keys() -> list[str]:
    base = TrialConfig(backend="jax", epochs=5, batch_size=32, validation="holdout", warmup_epochs=2,
                       plateau_factor=0.1, plateau_patience=1)
    keys = []
    for seed in (0, 1, 2):
        for activation, init, bn, dropout, (optimizer, lr), schedule in itertools.product(*LESSON_GRID_V1.values()):
            keys.append(base.replace(seed=seed, activation=activation, init=init, batch_norm=bn, dropout=dropout,
                                     optimizer=optimizer, learning_rate=lr, schedule=schedule).key())
    return keys


def test_keys_of_trials_stored_before_later_fields_existed_are_unchanged():
    assert hashlib.sha256("".join(lesson_grid_v1_keys()).encode()).hexdigest()[:16] == LESSON_GRID_V1_KEYS_SHA256


def test_adding_a_factor_is_one_declaration_and_keeps_old_keys():
    """weight_decay and label_smoothing were added after key version 1: each is declared once in TrialConfig
    and read once in the trial's recipe (study/training/recipe.py), which every executor trains with; no other
    module names them. At its default each leaves every key as it was; set, it makes a new trial."""
    plain = TrialConfig()
    assert plain.key() == "2320763cf976863f"
    for name, value in (("weight_decay", 1e-4), ("label_smoothing", 0.1)):
        factor = FACTORS[name]
        assert not factor.keyed_at_default and factor.structural and factor.numeric
        assert plain.replace(**{name: FACTORS[name].coerce(0)}).key() == plain.key()
        assert plain.replace(**{name: value}).key() != plain.key()
        assert name not in plain.identity() and name in plain.replace(**{name: value}).identity()
        assert f"config.{name}" in (PACKAGE / "training" / "recipe.py").read_text()
        readers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if name in p.read_text())
        assert readers == ["config/trial_config.py", "training/recipe.py"], readers
    assert FACTORS["weight_decay"].problem("weight_decay", -1.0) == \
        "-1.0 is out of range; allowed: weight_decay >= 0 (finite)"
    assert FACTORS["label_smoothing"].problem("label_smoothing", 1.0) == \
        "1.0 is out of range; allowed: 0 <= label_smoothing < 1"
