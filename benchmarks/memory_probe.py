"""RSS of one worker process after 10 and after N small trials through the real runner.

Usage: python benchmarks/memory_probe.py DATA_DIR N   (prints one JSON line)
"""

import json
import logging
import sys
import tempfile
from pathlib import Path

from study.core.logs import send_lines_to
from study.execution.launch import run_study
from study.spec.study_spec import parse_spec


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    data_dir, n = sys.argv[1], int(sys.argv[2])
    spec = parse_spec({"name": "memory_probe", "epochs": 1, "train_subset": 256, "seeds": list(range(n)),
                       "backend": "jax"}, source="memory_probe")
    samples: dict[int, float] = {}
    seen = [0]

    class TrialLines(logging.Handler):
        """Samples the memory after the 10th and the last trial's progress line ("[i/N] ...")."""

        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("["):
                seen[0] += 1
                if seen[0] in (10, n):
                    samples[seen[0]] = rss_mb()

    send_lines_to(TrialLines())
    store = Path(tempfile.mkdtemp()) / "mlflow.db"
    run_study(spec, tracking_uri=f"sqlite:///{store}", data_dir=data_dir)
    print(json.dumps({"trials": n, "rss_mb_after_10": samples[10], "rss_mb_after_last": samples[n]}))


if __name__ == "__main__":
    main()
