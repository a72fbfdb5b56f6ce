"""The fused executor's dropout generator, A/B: rbg-threefry against Keras' threefry, and the Keras executor.

    python benchmarks/fused_rbg.py [--data-dir DIR] [--workers 2] [--epochs 3] [--train-subset 6000]
                                   [--seeds 0] [--rounds 1]

Runs the lesson grid's factors (no confirm stage; epochs, train subset and seeds reduced so it fits a
shared 2-core machine, all stated in the output) with `study run` on fresh stores: the fused executor
with each dropout generator (STUDY_FUSED_DROPOUT) and the Keras executor, interleaved per round, and
writes benchmarks/results/<date>-<host>-fused-rbg.{json,md} with the CPU and the load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from grid_executors import run  # noqa: E402

from study.tracking.environment import machine  # noqa: E402

ARMS = [("fused", "keras-threefry"), ("fused", "rbg-threefry"), ("keras", "")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("STUDY_DATA_DIR", ""))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=6000)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    raw = yaml.safe_load((ROOT / "ablations" / "lesson_grid.yaml").read_text())
    raw.pop("confirm", None)
    raw.update(epochs=args.epochs, train_subset=args.train_subset, seeds=[int(s) for s in args.seeds.split(",")])
    rows = []
    for round_ in range(args.rounds):
        for i, (executor, generator) in enumerate(ARMS if round_ % 2 == 0 else ARMS[::-1]):
            workdir = Path(tempfile.mkdtemp(prefix="fused-rbg-"))
            spec = workdir / "lesson_grid_sub.yaml"
            spec.write_text(yaml.safe_dump(raw, sort_keys=False))
            os.environ["STUDY_FUSED_DROPOUT"] = generator or "rbg-threefry"
            load = os.getloadavg()[0]
            result = run(spec, executor, args.workers, args.data_dir, workdir, [])
            arm = f"{executor}:{generator}" if generator else executor
            rows.append({"round": round_, "arm": arm, "wall_s": result["wall_s"], "load_before": load,
                         "load_after": os.getloadavg()[0]})
            print(json.dumps(rows[-1]), flush=True)
    walls = {arm: [r["wall_s"] for r in rows if r["arm"] == arm] for arm in {r["arm"] for r in rows}}
    mean = {arm: sum(w) / len(w) for arm, w in walls.items()}
    result = {"date": f"{dt.date.today():%Y-%m-%d}", "host": socket.gethostname(), "machine": machine(),
              "grid": {k: raw[k] for k in ("epochs", "train_subset", "seeds")} | {"factors": raw["factors"]},
              "workers": args.workers, "rows": rows, "mean_wall_s": mean,
              "rbg_over_threefry": mean["fused:rbg-threefry"] / mean["fused:keras-threefry"],
              "fused_rbg_over_keras": mean["fused:rbg-threefry"] / mean["keras"],
              "fused_threefry_over_keras": mean["fused:keras-threefry"] / mean["keras"]}
    stem = args.out / f"{result['date']}-{result['host']}-fused-rbg"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    lines = [f"# Fused dropout generator A/B, {result['date']}", "",
             f"Lesson grid factors, epochs {args.epochs}, train_subset {args.train_subset}, seeds {args.seeds}, "
             f"no confirm stage, {args.workers} workers; machine: {result['machine']}", "",
             "| round | arm | wall s | load before | load after |", "|---|---|---|---|---|"]
    lines += [f"| {r['round']} | {r['arm']} | {r['wall_s']:.1f} | {r['load_before']:.2f} | {r['load_after']:.2f} |"
              for r in rows]
    lines += ["", f"rbg / threefry (fused): {result['rbg_over_threefry']:.3f}; fused rbg / keras: "
              f"{result['fused_rbg_over_keras']:.3f}; fused threefry / keras: {result['fused_threefry_over_keras']:.3f}"]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
