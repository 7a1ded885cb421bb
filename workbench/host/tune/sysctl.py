"""Kernel settings that live mode cares about, read from ``<root>/proc/sys`` and ``<root>/sys``.

A sysctl name maps to its file by dots -> slashes (``net.core.rmem_max`` ->
``/proc/sys/net/core/rmem_max``), as sysctl(8) does.
"""

from __future__ import annotations

from .paths import read

SYSCTLS = (
    "net.core.rmem_max", "net.core.rmem_default", "net.core.wmem_max", "net.core.netdev_max_backlog",
    "net.core.netdev_budget", "net.core.busy_read", "net.core.busy_poll", "net.core.somaxconn",
    "kernel.sched_rt_runtime_us", "vm.nr_hugepages",
)
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
MOUNTS = "/proc/mounts"


def sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def read_sysctls(root="/", names=SYSCTLS) -> dict[str, str | None]:
    """name -> value as the kernel prints it (None: this kernel has no such setting)."""
    return {n: read(root, sysctl_path(n)) for n in names}


def read_thp(root="/") -> str | None:
    """The chosen transparent-huge-page mode (the bracketed word), or None."""
    text = read(root, THP_ENABLED)
    if not text or "[" not in text:
        return None
    return text[text.index("[") + 1:text.index("]")]


def hugetlbfs_mounts(root="/") -> list[str]:
    text = read(root, MOUNTS) or ""
    return [p[1] for p in (line.split() for line in text.splitlines()) if len(p) > 2 and p[2] == "hugetlbfs"]
