"""The `confirm` stage of a study spec: the leaderboard's top configs and the ablation path re-run on fresh seeds.

Why: with 3 seeds the "best" config is the luckiest of many near-equals (selection on the same seeds that
estimate it), and the path's small late steps are within seed noise. The confirm stage picks its configs
on the main seeds and measures them again on new seeds, so the top of the leaderboard and the path are
estimated on data that played no part in choosing them. Its trials are ordinary trials (new keys, because
the seed differs) that the same queue trains once the main trials are done.

```yaml
confirm:
  top_k: 5                 # the 5 best configs by mean val accuracy over the main seeds
  seeds: [3, 4, 5, 6, 7]   # new seeds (none of the study's `seeds`)
  path: true               # also every config on the ablation path (default true)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from study.core.errors import SpecError
from study.spec.reading import int_value, reject_unknown, seed_list

CONFIRM_KEYS = ("top_k", "seeds", "path")


@dataclass(frozen=True)
class ConfirmSpec:
    top_k: int
    seeds: tuple[int, ...]
    path: bool = True


def parse_confirm(source: str, raw: Any, main_seeds: tuple[int, ...]) -> ConfirmSpec | None:
    """The `confirm` mapping, validated: top_k >= 1, new seeds, path a boolean; None when absent."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError(source, "confirm", "must be a mapping with keys top_k, seeds, path, "
                                           "e.g. {top_k: 5, seeds: [3, 4, 5, 6, 7]}")
    reject_unknown(source, "confirm", raw, CONFIRM_KEYS)
    if "seeds" not in raw:
        raise SpecError(source, "confirm.seeds", "is required: the new seeds the confirmed configs run with")
    top_k = int_value(source, "confirm.top_k", raw.get("top_k", 5), low=1)
    seeds = seed_list(source, "confirm.seeds", raw["seeds"], example="[3, 4, 5, 6, 7]")
    reused = sorted(set(seeds) & set(main_seeds))
    if reused:
        raise SpecError(source, "confirm.seeds", f"{reused} repeat the study's seeds {list(main_seeds)}; confirm "
                                                 "seeds must be new, so selection and confirmation use different data")
    path = raw.get("path", True)
    if not isinstance(path, bool):
        raise SpecError(source, "confirm.path", f"{path!r} must be a boolean (true or false)")
    return ConfirmSpec(top_k=top_k, seeds=seeds, path=path)
