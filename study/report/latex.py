"""Report tables as LaTeX for papers: booktabs tabulars written next to their CSVs (`tables/*.tex`).

The table is the one the README shows (numbers already formatted, intervals in brackets), escaped for
LaTeX and with the few non-ASCII signs the tables use spelled as math, so it compiles with pdflatex
(`\\usepackage{booktabs}` in the preamble).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SIGNS = {"Δ": r"$\Delta$", "±": r"$\pm$", "−": "-", "…": r"\ldots{}", "≤": r"$\leq$", "≥": r"$\geq$"}


def write_latex(table: pd.DataFrame, path: Path) -> Path:
    """`table` as a booktabs tabular at `path` (a .tex beside the table's .csv); returns the path."""
    text = table.astype(str).to_latex(index=False, escape=True, column_format="l" * len(table.columns))
    for sign, latex in SIGNS.items():
        text = text.replace(sign, latex)
    text = text.replace("\n[", "\n{}[")  # a row opening with "[" is no [length] of \\ or \midrule
    path.write_text(text)
    return path
