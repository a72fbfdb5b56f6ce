"""What a result depends on besides its config: package versions, the machine, the command."""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path

from study.core.text import redact

PACKAGES = ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "numpy", "mlflow", "optuna")


def versions() -> dict[str, str]:
    """Versions of everything that can change a result, recorded on every run."""
    out = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    # The fused executor's dropout generator (study.training.fused.dropout_bits; tracking sits below training)
    out["fused_dropout"] = os.environ.get("STUDY_FUSED_DROPOUT", "rbg-threefry")
    return out


def cpu_model() -> str:
    """The CPU's model name: XLA/oneDNN kernels differ between CPU families (Intel, AMD), so results
    are bit-identical only on the same family."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, str]:
    return {"host": socket.gethostname(), "platform": platform.platform(), "cpu": cpu_model(),
            "cores": str(os.cpu_count())}


def command_line() -> str:
    """This process's command as tagged on its MLflow run (and shown in reports), passwords redacted."""
    program = "python -m study" if sys.argv[0].endswith("__main__.py") else Path(sys.argv[0]).name
    return redact(" ".join([program, *sys.argv[1:]]))
