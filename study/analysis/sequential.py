"""The adaptive design's decision rule: after each round of seeds, which targets are decided and which configs
need another seed.

Targets (study.analysis.adaptive_targets builds them from a spec):
- a **contrast**: a mean over blocks of (level - reference), each block a combination of the other factors'
  levels (every main effect; every lesson claim's contrast). Seeds are the unit: per seed s the contrast's
  value X_s = sum_c w_c y_cs is one observation, and the seeds are independent draws (the blocks are held
  fixed: these are the effects *on this grid*, the question more seeds can answer; how an effect varies
  across blocks is the conditional-effects section's question, which more seeds cannot shrink). X_s, not
  the blocks' seed pairs, because one seed moves every block together (the same seed draws the same initial
  weights and batch order in every config: on the lesson grid the per-seed grid average varied 1.2-11x more
  than independent blocks would let it);
- **membership of the top group** of one config i: `out` when some rival j is better by more than the margin
  (or a seed of i does not learn, as in study.analysis.stats.top_group), `in` when no rival can be better by
  the margin, each comparison a paired difference over the seeds both configs ran, Bonferroni over the
  k - 1 rivals, and each pair's variance moderated (empirical Bayes over every pair of the look, Smyth 2004)
  so two or three seeds are enough to drop a clearly worse config.
A target is decided when its repeated confidence interval (study.analysis.stats.repeated) lies beyond the margin on
one side (`higher`, `lower`; `out`) or inside it (`equivalent`; `in`), open otherwise. Decisions are final. From
40% of max_seeds on, and never on fewer than 4 seeds, an open target whose predictive power is below FUTILITY
stops asking for seeds (Spiegelhalter, Freedman & Blackburn 1986): the probability, given the results so far (a
flat prior on the effect, its per-seed SD as estimated), that its interval at max_seeds decides it. Not earlier:
with two or three seeds the estimate and its SD are too rough to give up on. A target near the margin (an effect of
about 0.5 pp with a margin of 0.5 pp) stays open whatever the seeds; a futile target stays open, and the rule is
non-binding (it only withholds seeds: every decision is still read off the repeated intervals, so their coverage is
unchanged; a futile target whose configs run anyway for another target is looked at again). The next round re-runs,
with one more seed, every config whose results enter an open target that is not futile; the study stops when no
such target is left or max_seeds is reached.

`replay` is a pure function of the results, so the worker that closes a round and the report that explains it
reach the same rounds and the same decisions from the same trials.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from scipy import stats

from study.analysis.stats.repeated import critical_value, nominal_levels, variance_prior

HIGHER, LOWER, EQUIVALENT, IN, OUT, OPEN = "higher", "lower", "equivalent", "in", "out", "open"
TOP_GROUP = "top group"
PRIMARY = "final_val_accuracy"
# Predictive power below which an open target asks for no more seeds. Futility rules in use take 10-20%. On two
# runs of benchmarks/adaptive.py, 0.20 spent 0.392 and 0.384 of the fixed design's trials but, on the second,
# left open a top-group target (predictive power 0.15 at 5 seeds) that the fixed design decides; 0.10 spent
# 0.403 and 0.402 and kept every decision of the fixed design. Keeping the decisions comes first.
FUTILITY = 0.10
# ... from this fraction of max_seeds on: 4 of 10 seeds. On 200 studies resampled from the adaptive benchmark's
# fixed-design results (benchmarks/adaptive.py), 0.4 spent 0.407 of the fixed design's trials and 0.5 0.412, and
# both departed from the fixed design's decision on 0.2-0.3% of the targets it decides (36 and 39 of 14,738).
FUTILITY_FROM = 0.4
FUTILITY_MIN_SEEDS = 4  # ... and never on fewer seeds (with 2 or 3 the per-seed SD is too rough to give up on)


@dataclass(frozen=True)
class SequentialDesign:
    """The adaptive spec's numbers in the metric's own units (margin 0.005 = 0.5 pp)."""

    start_seeds: int
    max_seeds: int
    margin: float
    alpha: float = 0.05
    spending: str = "pocock"

    @property
    def looks(self) -> tuple[int, ...]:
        """Seeds per config at each look: one more seed per round."""
        return tuple(range(self.start_seeds, self.max_seeds + 1))

    def level(self, seeds: int, alpha: float | None = None) -> float:
        """The nominal two-sided level of the look at `seeds` seeds (0 when that is no look)."""
        if seeds not in self.looks:
            return 0.0
        fractions = tuple(n / self.max_seeds for n in self.looks)
        return nominal_levels(fractions, self.alpha if alpha is None else alpha, self.spending)[
            self.looks.index(seeds)]


@dataclass(frozen=True)
class Contrast:
    """A linear target: per seed, sum over configs of weight x result (a mean over blocks of level - reference)."""

    name: str
    kind: str  # "main effect" | "claim"
    weights: tuple[tuple[int, float], ...]  # (config index, weight)
    metric: str = PRIMARY

    @property
    def configs(self) -> frozenset[int]:
        return frozenset(c for c, _ in self.weights)


@dataclass
class Grid:
    """Results as configs x seeds matrices (seeds in the spec's order; nan where not run or not finished)."""

    labels: list[tuple[str, ...]]  # each config's levels, in factor order
    values: dict[str, np.ndarray]  # metric -> configs x max_seeds
    learned: np.ndarray  # configs x max_seeds: False where a finished trial did not learn

    def seeds(self) -> np.ndarray:
        """Per config, how many of the first seeds have a result (a config's seeds are a prefix)."""
        done = np.isfinite(self.values[PRIMARY])
        return np.where(done.all(axis=1), done.shape[1], np.argmin(done, axis=1))


@dataclass
class Decision:
    target: str
    kind: str
    decision: str
    seeds: int  # seeds per config at the look that decided it (the last look it reached, if open)
    round: int  # the round (0 = the start seeds) whose results decided it
    trials: int  # trials of the configs entering it at that look
    estimate: float = math.nan
    low: float = math.nan
    high: float = math.nan
    configs: frozenset[int] = field(default_factory=frozenset)
    power: float = 1.0  # predictive power at max_seeds (an open target); below FUTILITY it asks for no seeds

    @property
    def futile(self) -> bool:
        return self.decision == OPEN and self.power < FUTILITY


@dataclass
class Round:
    index: int
    seeds: int  # seeds per config that this round brings its configs to
    configs: frozenset[int]  # the configs this round runs (round 0: all)
    trials: int  # trials this round adds
    decided: int  # targets decided once this round's results are in
    open: int


@dataclass
class Replay:
    decisions: dict[str, Decision]
    rounds: list[Round]  # the rounds whose results are all in, each followed by its decisions
    pending: Round | None  # the round the decisions call for next (None once the study is finished)
    finished: bool  # every target decided, or max_seeds reached

    @property
    def open_targets(self) -> list[str]:
        return [d.target for d in self.decisions.values() if d.decision == OPEN]

    def next_trials(self, grid: Grid) -> list[tuple[int, int]]:
        """(config, seed index) pairs of the pending round that have no result yet: each of its configs runs
        the seeds it lacks up to the round's seeds (one more than before, or more for a config that rejoins)."""
        if self.pending is None:
            return []
        have = grid.seeds()
        return [(c, s) for c in sorted(self.pending.configs) for s in range(int(have[c]), self.pending.seeds)]


def interval_decision(low: float, high: float, margin: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return OPEN
    if low > margin:
        return HIGHER
    if high < -margin:
        return LOWER
    if -margin < low and high < margin:
        return EQUIVALENT
    return OPEN


def _final(sd: float, n: int, design: SequentialDesign, level: float, df_gain: float) -> tuple[float, float]:
    """(half-width of the interval at max_seeds, SD of the final mean's predictive law) for a per-seed SD `sd`
    seen on `n` seeds: the final mean, given the mean so far (flat prior), is normal around it with variance
    sd^2 (N - n) / (N n); the final half-width is t(level, N - 1 + df_gain) sd / sqrt(N)."""
    total = design.max_seeds
    return (critical_value(level, total - 1 + df_gain) * sd / math.sqrt(total),
            sd * math.sqrt((total - n) / (total * n)))


def _too_early(estimate: float, sd: float, n: int, design: SequentialDesign) -> bool:
    return (n >= design.max_seeds or n < max(FUTILITY_FROM * design.max_seeds, FUTILITY_MIN_SEEDS)
            or not (math.isfinite(estimate) and math.isfinite(sd)) or sd <= 0)


def conditional_power(estimate: float, sd: float, n: int, design: SequentialDesign, level: float,
                      df_gain: float = 0.0) -> float:
    """P(the interval at max_seeds decides) for a contrast seen at `estimate` with per-seed SD `sd` on `n`
    seeds (see `_final`); 1 before FUTILITY_FROM of max_seeds. `level`: the final look's nominal level for this
    target; `df_gain`: extra degrees of freedom (a moderated variance's prior)."""
    if _too_early(estimate, sd, n, design):
        return 1.0
    half, spread = _final(sd, n, design, level, df_gain)
    margin = design.margin
    cdf = lambda x: float(stats.norm.cdf((x - estimate) / spread))  # noqa: E731
    inside = max(0.0, cdf(margin - half) - cdf(-margin + half)) if margin > half else 0.0
    return (1.0 - cdf(margin + half)) + cdf(-margin - half) + inside


def pair_powers(estimate: float, sd: float, n: int, design: SequentialDesign, level: float,
                df_gain: float) -> tuple[float, float]:
    """For a rival's lead over a config (per-seed SD `sd`), as in `conditional_power`: P(at max_seeds its
    interval lies above the margin: the config is out), P(it lies below the margin: this rival keeps it
    from nothing)."""
    if _too_early(estimate, sd, n, design):
        return 1.0, 1.0
    half, spread = _final(sd, n, design, level, df_gain)
    return (float(stats.norm.sf((design.margin + half - estimate) / spread)),
            float(stats.norm.cdf((design.margin - half - estimate) / spread)))


def contrast_interval(x: np.ndarray, level: float) -> tuple[float, float, float]:
    """Mean of the per-seed values and its interval at nominal `level` (Student t over the seeds)."""
    n = x.size
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else math.nan
    if n < 2:
        return mean, math.nan, math.nan
    if sd == 0.0:  # every seed gave the same value (e.g. a level that changes nothing): no spread to widen it
        return mean, mean, mean
    half = critical_value(level, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def replay(grid: Grid, contrasts: list[Contrast], design: SequentialDesign, top_group: bool = True,
           fixed: bool = False) -> Replay:
    """Walk the looks in order on the results in `grid` (see the module docstring). With `fixed`, only the
    last look, at the fixed-sample level alpha: the fixed design at max_seeds that the adaptive one saves on.

    Each round's configs follow from the decisions before it, and a config that rejoins a later round (a rival
    an open top-group target needs again) catches up on the seeds it skipped, so a look sees exactly the
    results the process that made it saw."""
    available = grid.seeds()
    configs = len(grid.labels)
    have = np.zeros(configs, dtype=int)  # seeds per config at the current look
    decisions: dict[str, Decision] = {}
    bounds = np.full((design.max_seeds + 1, 4, configs, configs), np.nan)  # see _top_group
    rounds: list[Round] = []
    running = frozenset(range(configs))
    looks = design.looks[-1:] if fixed else design.looks
    for index, n in enumerate(looks):
        members = sorted(running)
        trials = int(sum(n - have[c] for c in members))
        if (available[members] < n).any():  # this round has not run (or not finished) yet
            return Replay(decisions, rounds, Round(index, n, running, trials, 0, 0), False)
        have[members] = n
        level = design.alpha if fixed else design.level(n)
        for contrast in contrasts:
            if contrast.name in decisions and decisions[contrast.name].decision != OPEN:
                continue
            support = sorted(contrast.configs)
            if (have[support] < n).any():
                continue
            x = sum(w * grid.values[contrast.metric][c, :n] for c, w in contrast.weights)
            x = np.asarray(x, dtype=float)
            estimate, low, high = contrast_interval(x, level)
            power = 1.0 if fixed or n < 2 else conditional_power(
                estimate, float(x.std(ddof=1)), n, design, design.level(design.max_seeds))
            decisions[contrast.name] = Decision(contrast.name, contrast.kind,
                                                interval_decision(low, high, design.margin), n, index,
                                                len(support) * n, estimate, low, high, contrast.configs, power)
        if top_group and configs > 1:
            _top_group(grid, have, n, index, design, decisions, bounds, fixed)
        open_configs = frozenset().union(*(d.configs for d in decisions.values()
                                           if d.decision == OPEN and not d.futile))
        rounds.append(Round(index, n, running, trials, len(decisions) - _open(decisions), _open(decisions)))
        if not open_configs or n == design.max_seeds:
            break
        running = open_configs
    return Replay(decisions, rounds, None, True)


def _open(decisions: dict[str, Decision]) -> int:
    return sum(d.decision == OPEN for d in decisions.values())


def top_group_name(label: tuple[str, ...]) -> str:
    return f"{TOP_GROUP}: " + (" ".join(label) if label else "(one config)")


def _top_group(grid: Grid, have: np.ndarray, n: int, index: int, design: SequentialDesign,
               decisions: dict[str, Decision], bounds: np.ndarray, fixed: bool) -> None:
    """Membership decisions of the open configs this look ran (see the module docstring).

    Each pair's interval is at alpha / (2 (k - 1)): a config is wrongly `out` only if one of its k - 1 pairs
    misses (at most alpha / 2), wrongly `in` only if its pair with the truly best config misses or that
    config was wrongly dropped as `out` (at most alpha / 2 more), so each decision errs with probability at
    most alpha. Configs that are out (by a rival, or because a seed did not learn) are no rivals any more.
    `bounds[seeds, (diff, low, high, sd), j, i]` keeps every look's pair intervals: a rival that stopped
    earlier is compared at the last look both ran. An open config's conditional power (see `pair_powers`) is
    that of its likeliest way out (some rival ahead by more than the margin) plus that of its way in (every
    blocker behind by less), the latter bounded by its weakest pair."""
    k = len(grid.labels)
    level = design.alpha / (2 * (k - 1))
    level = level if fixed else design.level(n, level)
    ran = np.flatnonzero(have == n)
    y = grid.values[PRIMARY][ran, :n]
    mean = y.mean(axis=1)
    centred = y - mean[:, None]
    cov = centred @ centred.T / (n - 1)
    var = np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov  # [j, i]: variance of (j - i) per seed
    # the prior from the pairs of configs that learn (the others are out by rule), trended on the pair's error rate
    error = np.log(np.clip(1.0 - (mean[:, None] + mean[None, :]) / 2, 1e-4, None))
    learners = np.flatnonzero(grid.learned[ran, :n].all(axis=1))
    upper = tuple(learners[part] for part in np.triu_indices(learners.size, 1))
    post, df = variance_prior(var[upper], n - 1, error[upper]).posterior(var, n - 1, error)
    half = critical_value(level, df) * np.sqrt(np.maximum(post, 0.0) / n)
    diff = mean[:, None] - mean[None, :]
    grid_ix = np.ix_(ran, ran)
    bounds[n, 0][grid_ix], bounds[n, 1][grid_ix], bounds[n, 2][grid_ix] = diff, diff - half, diff + half
    bounds[n, 3][grid_ix] = np.sqrt(np.maximum(post, 0.0))
    final_level = design.level(design.max_seeds, design.alpha / (2 * (k - 1)))
    df_gain = float(np.max(df)) - (n - 1)  # the moderated variance's prior degrees of freedom
    names = [top_group_name(label) for label in grid.labels]
    out = np.array([decisions[name].decision == OUT if name in decisions else False for name in names])
    everyone = np.arange(k)
    for i in ran:
        if names[i] in decisions and decisions[names[i]].decision != OPEN:
            continue
        rivals = everyone != i
        estimate, low, high, sd = bounds[have, :, everyone, i].T  # each rival at the last look both ran
        alive = rivals & ~out
        blockers: set[int] = set()
        power = 1.0
        if not bool(grid.learned[i, :n].all()) or (low[rivals] > design.margin).any():
            decision = OUT
        elif (high[alive] < design.margin).all():
            decision = IN
        else:
            decision = OPEN
            blockers = {int(j) for j in np.flatnonzero(alive & ~(high < design.margin))}
            if not fixed:
                ways = [pair_powers(float(estimate[j]), float(sd[j]), n, design, final_level, df_gain)
                        for j in np.flatnonzero(alive)]
                ahead = max(w[0] for w in ways)
                behind = min(pair_powers(float(estimate[j]), float(sd[j]), n, design, final_level, df_gain)[1]
                             for j in blockers)
                power = min(1.0, ahead + behind)
        out[i] = decision == OUT
        best = int(np.nanargmax(np.where(rivals, estimate, -np.inf)))
        decisions[names[i]] = Decision(names[i], TOP_GROUP, decision, n, index, n, -float(estimate[best]),
                                       -float(high[best]), -float(low[best]), frozenset({int(i), *blockers}), power)
