"""The `confirm` stage of a study spec: the leaderboard's top configs and the ablation path re-run on fresh seeds.

Why: with 3 seeds the "best" config is the luckiest of many near-equals (selection on the same seeds that
estimate it), and the path's small late steps are within seed noise. The confirm stage picks its configs
on the main seeds and measures them again on new seeds, so the top of the leaderboard and the path are
estimated on data that played no part in choosing them. Its trials are ordinary trials (new keys, because
the seed differs) that the same queue trains once the main trials are done.

```yaml
confirm:
  top_k: 5                 # the 5 best configs by mean val accuracy over the main seeds
  seeds: [3, 4, 5, 6, 7]   # new seeds (none of the study's `seeds`; StudyFile checks)
  path: true               # also every config on the ablation path (default true)
```
"""

from __future__ import annotations

from pydantic import Field

from study.spec.schema import Boolean, Section, integer, seed_list


class ConfirmSpec(Section):
    """The `confirm` mapping: top_k >= 1, new seeds, path a boolean."""

    shape = "must be a mapping with keys top_k, seeds, path, e.g. {top_k: 5, seeds: [3, 4, 5, 6, 7]}"
    top_k: integer(1) = 5
    seeds: seed_list(example="[3, 4, 5, 6, 7]") = Field(description="the new seeds the confirmed configs run with")
    path: Boolean = True
