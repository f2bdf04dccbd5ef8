"""What the machine offers: usable CPU cores, cores left free by other processes, bfloat16 support, the torch device."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AMX or AVX512-BF16: ~3.5x faster than float32 here)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def cpu_threads() -> int:
    """CPU cores this process may run on (respects affinity masks, unlike ``os.cpu_count``)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def free_cpu_threads(own_threads: int = 1) -> int:
    """Cores not kept busy by other processes: available cores minus the 1-minute load of others.

    Two threads on two cores that another process also uses run about 4x slower than one thread
    (measured here: 100 vs 375 sequences/s), so on a shared machine fewer threads are faster.

    Args:
        own_threads: runnable threads of this process included in the load average.
    Returns:
        A thread count between 1 and :func:`cpu_threads`.
    """
    cores = cpu_threads()
    try:
        others = max(0.0, os.getloadavg()[0] - own_threads)
    except (AttributeError, OSError):  # no load average on this platform
        return cores
    return int(min(cores, max(1, round(cores - others))))


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``; any other value is returned as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op CPU threads, then restore the previous count (None: leave as is)."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
