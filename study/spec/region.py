"""The `region` of a study spec: where a practitioner would choose, for the report's region effects.

```yaml
region:                  # name the levels per factor (the others keep every level) ...
  activation: [relu]
  init: [xavier, he]
region: {margin_pp: 2.0} # ... or widen/narrow the data-driven region (default: within 1 pp of the best)
```
Without it the report finds the region from the data (study.analysis.stats.region).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, Strict

from study.spec.designs import Level
from study.spec.schema import Section, cached, check, says, section, validate

MARGIN_KEY = "margin_pp"
Margin = Annotated[float, Strict(), Field(gt=0, le=100), says(
    "{value} is not allowed; allowed: a number of percentage points, 0 < margin_pp <= 100")]


class RegionSection(Section):
    shape = "must be a mapping of factor to a list of its levels, or {margin_pp: number}, e.g. {activation: [relu]}"
    nonempty = True

    @classmethod
    def unknown(cls, key: Any) -> str:
        return f"is not a factor of this study; allowed keys: {', '.join(cls.keys())}"


def parse_region(source: str, raw: Any, factors: dict[str, tuple[Level, ...]]) -> dict[str, Any]:
    """`{factor: [level labels]}` and/or `{margin_pp: x}`, validated against the spec's factors; {} when absent."""
    if raw is None:
        return {}
    labels = {name: [lv.label for lv in levels] for name, levels in factors.items() if name != MARGIN_KEY}
    model = cached(("region", *labels.items()), lambda: section("Region", RegionSection, {
        **{name: _labels(known) for name, known in labels.items()}, MARGIN_KEY: Margin}))
    return validate(model, raw, source, at=("region",)).given(raw)


def _labels(labels: list[str]) -> Any:
    """A non-empty list of a factor's level labels (as YAML writes them: true, 0.2, relu)."""
    def known(values: list) -> list[str]:
        chosen = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        if any(v not in labels for v in chosen):
            raise ValueError("not a level")
        return chosen
    return Annotated[list[Any], Field(min_length=1), check(known), says(
        f"{{value}} is not allowed; allowed: a non-empty list of the factor's levels {labels}")]
