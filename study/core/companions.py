"""Companions: content that a spec switches on by name, kept out of the core.

A companion brings a study's own questions and the report sections that answer them: the lesson's claims,
its figures and its first model (study.lesson.companion, switched on by `lesson: true`). The core asks the
spec's companion (study.analysis.companion.Companion) instead of special-casing its content, so a study of your
own never gets the lesson's claims, and a new companion needs no change in the core: one entry below (its
`module:attribute`, imported when first asked for, so the core never imports it) and the spec key that names it.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

BUILT_IN = {"lesson": "study.lesson.companion:LESSON"}


@cache
def companion(name: str) -> Any:
    """The companion object named `name` (loaded once per process)."""
    if name not in BUILT_IN:
        raise KeyError(f"no companion named {name!r}; known: {', '.join(sorted(BUILT_IN))}")
    module, _, attribute = BUILT_IN[name].partition(":")
    return getattr(importlib.import_module(module), attribute)
