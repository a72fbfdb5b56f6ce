"""What fixed-width lanes cost: the lesson grid with the fused executor, before vs after, interleaved.

    python benchmarks/fused_lanes.py --before REV [--rounds 2] [--workers 2] [--data-dir DIR] [--confirm]

Each round runs benchmarks/grid_executors.py (fused only; `--no-confirm` unless --confirm)
once from a copy of commit REV (`git archive`) and once from this tree, alternating which goes
first (ABBA...), so both see the same machine load; per run: wall time of `study run`, the CPU
seconds of the whole benchmark process tree (steadier than wall on a shared machine), and the
load average before and after. Then whether each variant is reproducible whatever the queue did:
the per-trial final val_loss of its rounds compared (with 2 workers racing for groups, a group's
trials can be split between them). Writes benchmarks/results/<date>-<host>-fused-lanes.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checkout(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def final_val_losses(tmp: Path) -> dict[str, float]:
    """trial key -> final_val_loss, from the MLflow store grid_executors left under `tmp`."""
    store = next(tmp.glob("grid-executors-*/mlflow-fused.db"))
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT t.value, m.value FROM latest_metrics m JOIN tags t ON t.run_uuid = m.run_uuid "
                          "WHERE m.key = 'final_val_loss' AND t.key = 'trial_key'").fetchall()
    return dict(rows)


def one_run(tree: Path, args: argparse.Namespace, tmp: Path) -> dict:
    command = [sys.executable, str(tree / "benchmarks" / "grid_executors.py"), "--executors", "fused",
               "--workers", str(args.workers), "--data-dir", args.data_dir, "--out", str(tmp / "out")]
    if not args.confirm:
        command.append("--no-confirm")
    load_before, cpu_before, started = os.getloadavg()[0], cpu_children(), time.perf_counter()
    subprocess.run(command, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree), "TMPDIR": str(tmp)},
                   check=True, capture_output=True)
    elapsed, cpu = time.perf_counter() - started, cpu_children() - cpu_before
    result = json.loads(next((tmp / "out").glob("*-grid-executors.json")).read_text())
    fused = result["runs"]["fused"]
    return {"study_run_wall_s": round(fused["wall_s"], 1), "benchmark_wall_s": round(elapsed, 1),
            "cpu_s": round(cpu, 1), "trials": fused["trials"], "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2), "losses": final_val_losses(tmp)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit to compare against (before fixed lanes)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir", default=os.environ.get("STUDY_DATA_DIR", ""))
    parser.add_argument("--confirm", action="store_true", help="include the spec's confirm stage")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fused-lanes-"))
    trees = {"before": checkout(args.before, work / "before"), "after": ROOT}
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for round_ in range(args.rounds):
        for name in (("before", "after") if round_ % 2 == 0 else ("after", "before")):
            tmp = work / f"{name}-{round_}"
            tmp.mkdir()
            runs[name].append(one_run(trees[name], args, tmp))
            print(name, {k: v for k, v in runs[name][-1].items() if k != "losses"}, flush=True)
    summary = {}
    for name, rs in runs.items():
        losses = [r.pop("losses") for r in rs]
        same = sum(all(other.get(k) == v for other in losses[1:]) for k, v in losses[0].items())
        summary[name] = {"study_run_wall_s": [r["study_run_wall_s"] for r in rs], "cpu_s": [r["cpu_s"] for r in rs],
                         "trials_identical_across_rounds": f"{same} of {len(losses[0])}"}
    mean = {n: {k: sum(s[k]) / len(s[k]) for k in ("study_run_wall_s", "cpu_s")} for n, s in summary.items()}
    ratio = {k: round(mean["after"][k] / mean["before"][k], 3) for k in ("study_run_wall_s", "cpu_s")}
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"), "host": socket.gethostname(),
              "before": args.before, "after": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True,
                                                             capture_output=True).stdout.strip(),
              "confirm_stage": args.confirm, "workers": args.workers, "runs": runs, "summary": summary,
              "after_over_before": ratio}
    stem = f"{dt.date.today():%Y-%m-%d}-{socket.gethostname()}-fused-lanes"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    lines = [f"# Fixed-width fused lanes: the lesson grid before vs after, {result['date']}", "",
             f"`{args.before[:10]}` (before) vs `{result['after'][:10]}` (after), fused executor, {args.workers} "
             f"workers, {'with' if args.confirm else 'without'} the confirm stage, rounds interleaved.", "",
             "| variant | round | trials | study run wall | CPU s (all processes) | load avg before / after |",
             "|---|---|---|---|---|---|"]
    for round_ in range(args.rounds):
        for name in ("before", "after"):
            r = runs[name][round_]
            lines.append(f"| {name} | {round_ + 1} | {r['trials']} | {r['study_run_wall_s']:.0f} s | {r['cpu_s']:.0f} | "
                         f"{r['load_before']} / {r['load_after']} |")
    lines += ["", f"After / before: wall {ratio['study_run_wall_s']:.3f}, CPU {ratio['cpu_s']:.3f}.",
              f"Trials with the same final val_loss in every round: before {summary['before']['trials_identical_across_rounds']}, "
              f"after {summary['after']['trials_identical_across_rounds']}."]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
