"""Browser tests: say where their screenshots are once the run ends (they are test artifacts, gitignored)."""

from __future__ import annotations

from tests.ui.browser import SCREENSHOTS


def pytest_terminal_summary(terminalreporter) -> None:
    shots = sorted(SCREENSHOTS.glob("*.png")) if SCREENSHOTS.is_dir() else []
    if shots:
        terminalreporter.write_line(f"browser screenshots ({len(shots)}): {SCREENSHOTS}")
