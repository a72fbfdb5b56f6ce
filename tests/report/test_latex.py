"""Report tables as LaTeX: booktabs rules, LaTeX's special characters escaped, the tables' signs as math."""

from __future__ import annotations

import pandas as pd

from study.report.latex import write_latex


def test_a_formatted_table_becomes_a_booktabs_tabular(tmp_path):
    table = pd.DataFrame({"factor": ["learning_rate", "[odd]"], "Δ val acc [95% CI]": ["+3.00 pp [+2.10, +3.90]",
                                                                                   "−0.50 pp [n/a]"],
                          "why": ["a & b #1", "±2"]})
    text = write_latex(table, tmp_path / "t.tex").read_text()
    lines = text.splitlines()
    assert lines[0] == "\\begin{tabular}{lll}" and lines[1] == "\\toprule" and lines[-2] == "\\bottomrule"
    assert lines[2] == "factor & $\\Delta$ val acc [95\\% CI] & why \\\\" and lines[3] == "\\midrule"
    assert lines[4] == "learning\\_rate & +3.00 pp [+2.10, +3.90] & a \\& b \\#1 \\\\"
    assert lines[5] == "{}[odd] & -0.50 pp [n/a] & $\\pm$2 \\\\"  # "[" opening a row is no \\\\[length]
