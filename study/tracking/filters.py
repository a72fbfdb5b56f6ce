"""MLflow's search filter strings, written in one place.

Every search of the study's runs goes through `run_filter`: tag equalities and a run status,
joined with AND, in MLflow's filter syntax (tests/test_layout.py finds any other).
"""

from __future__ import annotations

from collections.abc import Mapping

RUNNING, FINISHED = "RUNNING", "FINISHED"  # MLflow run statuses the searches ask for


def run_filter(tags: Mapping[str, str] | None = None, status: str | None = None) -> str:
    """Runs whose tags have these values and, with `status`, whose MLflow status is it ("" matches every run)."""
    parts = [f"tags.{name} = '{value}'" for name, value in (tags or {}).items()]
    if status is not None:
        parts.append(f"attributes.status = '{status}'")
    return " AND ".join(parts)
