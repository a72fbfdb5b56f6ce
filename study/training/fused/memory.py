"""How many trials of one structure fit in memory at once: a group larger than that is split."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jax

SHARE = 0.5  # of the free memory one group may plan to use (XLA's temporaries and the rest need room too)


def free_bytes() -> int:
    """Free memory of the device the group trains on: the accelerator's, or the machine's on a CPU."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def bytes_per_trial(model: Any, optimizer: Any, batch_size: int, eval_batch_size: int) -> int:
    """A trial's own footprint: its variables several times over (weights, gradients, kept best copy,
    optimizer slots, the scan's carry) and its activations for one training and one evaluation batch."""
    weights = sum(math.prod(v.shape) * 4 for v in model.variables)
    slots = sum(math.prod(v.shape) * 4 for v in optimizer.variables)
    outputs = 0
    for layer in model.layers:
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        outputs += math.prod(d for d in shape[1:] if d is not None)
    activations = outputs * 4 * (3 * batch_size + eval_batch_size)
    return 5 * weights + 2 * slots + activations


def max_group(model: Any, optimizer: Any, batch_size: int, eval_batch_size: int, data_bytes: int) -> int:
    budget = SHARE * max(0, free_bytes() - data_bytes)
    return max(1, int(budget // max(1, bytes_per_trial(model, optimizer, batch_size, eval_batch_size))))
