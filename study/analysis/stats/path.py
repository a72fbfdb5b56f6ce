"""The ablation path (Fawcett & Hoos, 2016), read off the trials."""

from __future__ import annotations

import math

import pandas as pd

from study.analysis.stats.intervals import level_column, t_interval

Config = tuple[str, ...]


def ablation_path(frame: pd.DataFrame, factors: list[str], source: dict[str, str], metric: str,
                  target: dict[str, str] | None = None) -> tuple[pd.DataFrame, str]:
    """Greedy ablation path (Fawcett & Hoos 2016) from `source` to `target` (default: best config).

    Each step flips one factor still at its source level to its target level,
    taking the flip whose config has the best mean `metric` over seeds. Every row
    carries that config's mean and t interval over seeds and the step's gain over
    the previous config, paired by seed, with its t interval. Returns the path
    and a note (empty, or why the path stops early).
    """
    configs, note = path_configs(frame, factors, source, metric, target)
    if not configs:
        return pd.DataFrame(), note
    return path_rows(frame, factors, configs, metric), note


def path_configs(frame: pd.DataFrame, factors: list[str], source: dict[str, str], metric: str,
                 target: dict[str, str] | None = None) -> tuple[list[Config], str]:
    """The configs of the greedy path in order (level tuples in `factors` order), and a note."""
    by_config = _by_config(frame, factors, metric)
    means = {key: float(values.mean()) for key, values in by_config.items()}
    if not means:
        return [], "no finished trials"
    if target is None:
        best = max(means, key=means.get)
        target = dict(zip(factors, best))
    current = tuple(source[f] for f in factors)
    if current not in by_config:
        return [], "the source config was not run: " + describe(dict(zip(factors, current)))
    configs, note = [current], ""
    remaining = [f for f in factors if source[f] != target[f]]
    while remaining:
        options = []
        for factor in remaining:
            index = factors.index(factor)
            candidate = current[:index] + (target[factor],) + current[index + 1:]
            if candidate in by_config:
                options.append((means[candidate], factor, candidate))
        if not options:
            note = "the path stops: no config one flip further was run (" + ", ".join(
                f"{f}={target[f]}" for f in remaining) + " still to flip)"
            break
        _, factor, current = max(options, key=lambda option: option[0])
        configs.append(current)
        remaining.remove(factor)
    return configs, note


def path_rows(frame: pd.DataFrame, factors: list[str], configs: list[Config], metric: str) -> pd.DataFrame:
    """The path's table for a given sequence of configs, measured on `frame` (e.g. fresh seeds).

    A config `frame` has no trial of gets n = 0 and no numbers. The metric is an accuracy: intervals
    are clipped to [0, 1] (a gain's to [-1, 1]).
    """
    by_config = _by_config(frame, factors, metric)
    empty = pd.Series(dtype=float)
    rows = []
    for step, config in enumerate(configs):
        previous = configs[step - 1] if step else None
        changed = [f for f, a, b in zip(factors, previous, config) if a != b] if previous else []
        factor = changed[0] if changed else None
        old = previous[factors.index(factor)] if factor else None
        new = config[factors.index(factor)] if factor else None
        rows.append(_path_row(step, factor, old, new, config, by_config.get(config, empty),
                              by_config.get(previous, empty) if previous else None, factors))
    return pd.DataFrame(rows)


def _by_config(frame: pd.DataFrame, factors: list[str], metric: str) -> dict[Config, pd.Series]:
    keys = [level_column(f) for f in factors]
    data = frame[frame[metric].notna()]
    # sorted keys: ties between configs are broken the same way whatever order the trials came in
    return {key if isinstance(key, tuple) else (key,): group.set_index("seed")[metric]
            for key, group in data.groupby(keys, sort=True)}


def _path_row(step: int, factor: str | None, old: str | None, new: str | None, config: Config,
              values: pd.Series, before: pd.Series | None, factors: list[str]) -> dict:
    low, high = t_interval(values)
    low, high = max(low, 0.0), min(high, 1.0)  # a mean accuracy lies in [0, 1], so does its interval
    row = {"step": step, "flip": f"{factor}: {old} -> {new}" if factor else "start",
           "factor": factor or "", "config": describe(dict(zip(factors, config))),
           "n": int(values.count()), "mean": float(values.mean()) if values.count() else math.nan,
           "ci_low": low, "ci_high": high,
           "gain": math.nan, "gain_ci_low": math.nan, "gain_ci_high": math.nan, "gain_pairs": 0}
    if before is not None:
        paired = pd.concat([values.rename("now"), before.rename("before")], axis=1).dropna()
        gain = (paired["now"] - paired["before"]).to_numpy()
        row["gain"] = float(gain.mean()) if gain.size else math.nan
        low, high = t_interval(gain)
        row["gain_ci_low"], row["gain_ci_high"] = max(low, -1.0), min(high, 1.0)
        row["gain_pairs"] = int(gain.size)
    return row


def describe(levels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in levels.items())
