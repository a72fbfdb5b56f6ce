"""How the numbers are computed: one paragraph per kind of number, so a reader can check each."""

from __future__ import annotations

from study.analysis.companion import companion_of
from study.report.section import ReportContext
from study.report.sections.adaptive import METHOD as ADAPTIVE_METHOD

METHODS = """## How the numbers are computed

- **Metric.** `val accuracy` is the validation accuracy of the kept model (the epoch with the lowest val_loss,
  whose weights were kept in memory and restored); `test accuracy` is that model on the test set, evaluated once.
- **Units.** Every interval says what it is over. *Per config* (leaderboard, top group, ablation path): over
  **seeds**, Student t (3 seeds give a bootstrap only 10 distinct resamples). *Effects* (level vs reference): over
  **blocks**, one per combination of the other factors' levels; within a block the two levels' trials are paired
  by seed and averaged over seeds, so each block counts once (counting every seed pair as independent, kept in
  `tables/effects_*.csv` for comparison only, would be far too narrow). The **seed-noise interval** holds the
  blocks fixed: how precisely these blocks were measured. With one block the unit is the seed.
- **Evaluation noise.** Every seed is scored on the same validation images, so the seeds' scatter does not contain
  the split's own sampling error, sqrt(p (1 - p) / N): a config's val-accuracy interval adds it (Welch-Satterthwaite
  degrees of freedom), so it is never zero-width; a split where one image moves accuracy by 0.1 pp or more is
  flagged. Paired differences on the same images are stated against it as the noise floor.
- **Two kinds of interval, labelled.** Each effect's own 95% interval (unadjusted) and, beside it, the
  simultaneous 95% interval over its table (Bonferroni), which excludes zero only where Holm's correction agrees.
  Verdicts (`higher`/`lower`) and every verb in Findings follow the Holm-corrected two-sided t test over blocks
  (statsmodels), whose p is printed with each effect.
- **Fails, partly learns, learns.** A trial *fails* at val accuracy at most the majority-class rate plus 5 pp, or
  with a non-finite loss; it *learns* when it closes 80% of the gap from the majority-class rate to the best
  config's mean (the same rule for any dataset and budget); in between it *partly learns*. Effects are given on
  the failure rate, among learners (pairs where both learned) and pooled, with the median block and the
  Hodges-Lehmann estimate (`tables/effects_*.csv`); the effects among learners are recomputed at 0 (not
  failing), 80%, 90% and 95% to show how much they lean on the rule.
- **Conditional effects.** Each contrast within each level of every other factor, by block over the rest; a
  sign change (two sub-effects' intervals on opposite sides of zero) is flagged, and marked when both sides also
  hold after Holm over all sub-effects. The strongest term of order 3 or more of the decomposition gets its cells'
  contrasts.
- **The region near the top.** A rectangle of levels (so a balanced factorial in itself): the levels used by the
  configs whose every seed learns and whose mean lies within 1 pp of the best, then the level whose removal keeps
  the most of them dropped until every config in it learns on every seed (or the spec's `region:`). Effects and
  the decomposition are recomputed inside it.
- **Top group.** Among the confirmed configs on their confirm seeds (else every config on the main seeds), a
  subset selection in the spirit of Gupta's and Hsu's multiple comparisons with the best: a config leaves the
  group when some rival beats it by a one-sided paired t test over shared seeds (Welch when fewer than two are
  shared), Holm-corrected over its k - 1 rivals, or when a seed of it does not learn; the truly best config stays
  with probability at least 95%. `tables/top_group.csv` adds a bootstrap share of wins (seeds resampled, 4,000
  times, seed 0): how stable the ranking is on these seeds.
- **No-ops.** A level whose val accuracy is bit-identical to the reference's in at least half of its pairs is a
  (mostly) no-op and gets no test; for schedules, the logged learning rate shows in how many trials it changed.
- **Decomposition.** Saturated factorial: every main effect and interaction of every order from the config
  means (unweighted means when a config misses a seed), seed scatter as the error term, F tests with Holm over
  all terms. Importance = total effect (every term a factor takes part in).
- **Power.** Smallest difference detected with 80% power at a two-sided 5% level: per effect from its blocks;
  between two configs from the seed noise of the best configs and the seeds per config.
{COMPANION}- **Ablation path.** Fawcett & Hoos (2016), read off the trials: greedy one-factor flips from
  {START} to the best config, the order decided on the main seeds; with a `confirm` stage its numbers come from
  the confirm seeds.
- **Selection.** The best config is picked on val accuracy among many, so its mean over the seeds that picked it
  is optimistic; the confirm stage re-measures the top and the path on seeds that played no part in the choice.
- **Divergence.** A trial whose loss turned NaN/inf is a result, never dropped: it keeps its kept model's
  metrics, or chance accuracy (10%) if it had no finite epoch, and it fails.
"""


class MethodsSection:
    def render(self, ctx: ReportContext) -> str:
        return self.text(ctx) + (ADAPTIVE_METHOD if ctx.spec.adaptive is not None else "")

    @staticmethod
    def text(ctx: ReportContext) -> str:
        """The methods, with the path's start and the paragraphs of the spec's companion (its claims)."""
        companion = companion_of(ctx.spec)
        start = companion.path_start_name if companion is not None else "the study's base config"
        return METHODS.replace("{START}", start).replace("{COMPANION}", companion.methods if companion else "")
