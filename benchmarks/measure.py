"""Timing and memory measurement shared by the benchmark scripts.

- `timed_calls`: median CPU and wall seconds per call of each closure, the closures taking turns.
- `peak_memory_mib` / `current_rss_mib`: peak memory of this process (CUDA allocations on GPU, else the
  peak resident set `VmHWM`) and its resident set now.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued work (a no-op on CPU), so that a timer brackets it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_calls(
    calls: dict[str, Callable[[], Any]], repeats: int, warmup: int, device: torch.device
) -> dict[str, dict[str, float]]:
    """``{name: {"cpu_s", "wall_s"}}``: medians over `repeats` timed rounds after `warmup` untimed rounds, each
    round calling every closure once in turn (so a comparison sees the same machine conditions).

    On a shared CPU the wall time grows with the other processes' load; the CPU time of this process much
    less (it counts only the cycles this process got), so ratios of CPU times are the steadier measure.
    """
    for _ in range(warmup):
        for call in calls.values():
            call()
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    wall: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            synchronize(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            call()
            synchronize(device)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: {"cpu_s": statistics.median(cpu[name]), "wall_s": statistics.median(wall[name])} for name in calls}


def _proc_status_mib(field: str) -> float:
    """A memory field of Linux's `/proc/self/status` (reported in KiB), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status (the CPU memory numbers need Linux)")


def current_rss_mib() -> float:
    """Resident set size of this process now, MiB."""
    return _proc_status_mib("VmRSS")


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory of this process, MiB: `torch.cuda.max_memory_allocated` on GPU, else the peak resident set
    of this process image (`VmHWM`; `ru_maxrss` would carry the parent's peak over fork + exec)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _proc_status_mib("VmHWM")
