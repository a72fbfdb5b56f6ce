"""Fixed-width lanes: every fused program trains exactly `width` trials, so a trial's numbers never depend
on which trials share its program.

XLA compiles a vmapped program for the width of its leading axis, and kernels of another
width round differently: the first layer's one matrix product over the group is
`width x units` columns wide, and its blocking (and the handling of a last odd lane)
follow that width. Measured on this project's CPU (issue 22): one trial alone, in 2 lanes,
in 3 and in 16 gave four different val_losses, and in an odd width the last lane differed
from the others. At one fixed even width, a trial's result was the same bit for bit in
every lane and whatever its neighbours trained (other inits, rates, schedules), and the
same with 1 or 2 math threads. So a group is cut into programs of `width` lanes, and a
short one is padded with inert lanes (copies of its first trial, never active, their
results dropped). The padding is in the stacked state itself, so every vmapped function
over a group's state (training, evaluation, anything added at epoch end) sees `width`.

Width by measurement (CPU seconds of one group, 2 epochs of the lesson's MLP, here): a
lane's cost stops falling at about 4-6 lanes; 6 divides the lesson grid's groups of 12
(init x schedule) and holds its confirm stage's groups of 5 in one program: +4% on the
grid's groups, where 4 lanes cost +15% (three programs per group) and 12 cost 3.3x on the
confirm stage's groups of 5 and 7x on its trials alone. A trial alone pays for 6 lanes
(about 3.8x its old time). A GPU is latency-bound: a wide program costs about what a narrow
one does, so its lanes are wider (not measured yet). STUDY_FUSED_LANES overrides the width,
and with it the rounding: results are reproducible at one width.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

WIDTH = {"cpu": 6}  # by platform; others (GPUs) take DEFAULT_WIDE
DEFAULT_WIDE = 16


def lane_width(platform: str | None = None) -> int:
    """The number of lanes every fused program has on this platform (STUDY_FUSED_LANES overrides it)."""
    override = os.environ.get("STUDY_FUSED_LANES")
    if override:
        return max(1, int(override))
    return WIDTH.get(platform or jax.devices()[0].platform, DEFAULT_WIDE)


def parts(indices: Sequence[int], width: int) -> list[list[int]]:
    """A group's trials cut into programs of at most `width` trials each (the last one padded later)."""
    return [list(indices[start:start + width]) for start in range(0, len(indices), width)]


def stack(per_trial: list[list[np.ndarray]], width: int) -> list[jax.Array]:
    """Each variable's values stacked over `width` lanes: the trials', then copies of the first trial's."""
    rows = per_trial + [per_trial[0]] * (width - len(per_trial))
    return [jnp.stack([np.asarray(values[i]) for values in rows]) for i in range(len(per_trial[0]))]


def lanes_of(values: Sequence, width: int, fill) -> np.ndarray:  # noqa: ANN001 - a scalar of the values' type
    """A per-trial sequence padded to `width` lanes with `fill` (an inert lane's value)."""
    return np.asarray(list(values) + [fill] * (width - len(values)))
