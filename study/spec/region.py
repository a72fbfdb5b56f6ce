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

from typing import Any

from study.core.errors import SpecError
from study.spec.designs import Level

MARGIN_KEY = "margin_pp"


def parse_region(source: str, raw: Any, factors: dict[str, tuple[Level, ...]]) -> dict[str, Any]:
    """`{factor: [level labels]}` and/or `{margin_pp: x}`, validated against the spec's factors; {} when absent."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise SpecError(source, "region", "must be a mapping of factor to a list of its levels, or {margin_pp: "
                                          "number}, e.g. {activation: [relu]}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"region.{key}"
        if key == MARGIN_KEY:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100:
                raise SpecError(source, where, f"{value!r} is not allowed; allowed: a number of percentage points, "
                                               "0 < margin_pp <= 100")
            out[key] = float(value)
            continue
        if key not in factors:
            allowed = ", ".join([*factors, MARGIN_KEY]) or MARGIN_KEY
            raise SpecError(source, where, f"is not a factor of this study; allowed keys: {allowed}")
        labels = [lv.label for lv in factors[key]]
        values = value if isinstance(value, list) else None
        chosen = [str(v).lower() if isinstance(v, bool) else str(v) for v in values or []]
        unknown = [v for v in chosen if v not in labels]
        if not chosen or unknown:
            raise SpecError(source, where, f"{value!r} is not allowed; allowed: a non-empty list of the factor's "
                                           f"levels {labels}")
        out[key] = chosen
    return out
