"""The ablation path (Fawcett & Hoos, 2016), read off the trials."""

from __future__ import annotations

import math

import pandas as pd

from study.analysis.stats.intervals import level_column, t_interval


def ablation_path(frame: pd.DataFrame, factors: list[str], source: dict[str, str], metric: str,
                  target: dict[str, str] | None = None) -> tuple[pd.DataFrame, str]:
    """Greedy ablation path (Fawcett & Hoos 2016) from `source` to `target` (default: best config).

    Each step flips one factor still at its source level to its target level,
    taking the flip whose config has the best mean `metric` over seeds. Every row
    carries that config's mean and t interval over seeds and the step's gain over
    the previous config, paired by seed, with its t interval. Returns the path
    and a note (empty, or why the path stops early).
    """
    keys = [level_column(f) for f in factors]
    data = frame[frame[metric].notna()]
    by_config = {key if isinstance(key, tuple) else (key,): group.set_index("seed")[metric]
                 for key, group in data.groupby(keys, sort=False)}
    means = {key: float(values.mean()) for key, values in by_config.items()}
    if not means:
        return pd.DataFrame(), "no finished trials"
    if target is None:
        best = max(means, key=means.get)
        target = dict(zip(factors, best))
    current = tuple(source[f] for f in factors)
    if current not in by_config:
        return pd.DataFrame(), "the source config was not run: " + _describe(dict(zip(factors, current)))
    rows = [_path_row(0, None, None, None, current, by_config, None, factors)]
    note = ""
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
        _, factor, candidate = max(options, key=lambda option: option[0])
        rows.append(_path_row(len(rows), factor, current[factors.index(factor)], target[factor], candidate,
                              by_config, current, factors))
        current = candidate
        remaining.remove(factor)
    return pd.DataFrame(rows), note


def _path_row(step: int, factor: str | None, old: str | None, new: str | None, config: tuple,
              by_config: dict[tuple, pd.Series], previous: tuple | None, factors: list[str]) -> dict:
    values = by_config[config]
    low, high = t_interval(values)
    row = {"step": step, "flip": f"{factor}: {old} -> {new}" if factor else "start",
           "factor": factor or "", "config": _describe(dict(zip(factors, config))),
           "n": int(values.count()), "mean": float(values.mean()), "ci_low": low, "ci_high": high,
           "gain": math.nan, "gain_ci_low": math.nan, "gain_ci_high": math.nan, "gain_pairs": 0}
    if previous is not None:
        paired = pd.concat([values.rename("now"), by_config[previous].rename("before")], axis=1).dropna()
        gain = (paired["now"] - paired["before"]).to_numpy()
        row["gain"] = float(gain.mean()) if gain.size else math.nan
        row["gain_ci_low"], row["gain_ci_high"] = t_interval(gain)
        row["gain_pairs"] = int(gain.size)
    return row


def _describe(levels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in levels.items())
