"""Buffers backed by huge pages, private or shared between processes.

Two ways to get 2 MiB pages, as the kernel documents (admin-guide/mm/transhuge.rst,
hugetlbpage.rst):

- transparent huge pages: an anonymous mapping advised ``madvise(MADV_HUGEPAGE)``; needs
  ``/sys/kernel/mm/transparent_hugepage/enabled`` = ``always`` or ``madvise``. Only
  PRIVATE anonymous memory gets them here (shared memory follows ``shmem_enabled``).
- hugetlbfs: a file on a ``hugetlbfs`` mount, from the pool ``vm.nr_hugepages`` reserves.
  This is the way to share huge pages between processes.

``alloc_buffer`` reports which one it got; ``huge_backed_bytes`` checks ``/proc/self/smaps``.
"""

from __future__ import annotations

import mmap
import os
import uuid
from pathlib import Path

import numpy as np

HUGE_PAGE_SZ = 2 << 20               # bytes: x86-64 huge page
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
SHM_DIR = "/dev/shm"


def _round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def thp_mode() -> str:
    try:
        text = open(THP_ENABLED).read()
        return text[text.index("[") + 1:text.index("]")]
    except (OSError, ValueError):
        return "unavailable"


def hugetlbfs_mount() -> str | None:
    """Mount point of a hugetlbfs with free pages, or None."""
    try:
        for line in open("/proc/mounts"):
            parts = line.split()
            if len(parts) > 2 and parts[2] == "hugetlbfs" and os.access(parts[1], os.W_OK):
                return parts[1]
    except OSError:
        pass
    return None


def alloc_buffer(nbytes: int, hugepages: bool = False) -> tuple[np.ndarray, str]:
    """A zeroed private uint8 buffer of ``nbytes``; with ``hugepages``, backed by THP if the
    host allows. Returns (array, how it is backed in words)."""
    nbytes = max(1, int(nbytes))
    if not hugepages:
        return np.zeros(nbytes, np.uint8), "4 KiB pages"
    size = _round_up(nbytes, HUGE_PAGE_SZ) + HUGE_PAGE_SZ
    mm = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, mmap.PROT_READ | mmap.PROT_WRITE)
    whole = np.frombuffer(mm, np.uint8)
    start = (-whole.ctypes.data) % HUGE_PAGE_SZ           # the first 2 MiB boundary inside the mapping
    mode = thp_mode()
    if mode not in ("always", "madvise"):
        how = f"4 KiB pages (transparent huge pages are '{mode}' on this host)"
    else:
        try:
            mm.madvise(mmap.MADV_HUGEPAGE, start, size - start - (size - start) % HUGE_PAGE_SZ)
            how = "transparent huge pages (madvise MADV_HUGEPAGE)"
        except (OSError, AttributeError, ValueError) as e:
            how = f"4 KiB pages (madvise refused: {e})"
    buf = whole[start:start + nbytes]
    buf[::4096] = 0                                       # touch every page now, not on the hot path
    return buf, how


def huge_backed_bytes(arr: np.ndarray) -> int:
    """Bytes of ``arr``'s mapping that the kernel backs with huge pages (/proc/self/smaps)."""
    lo = arr.ctypes.data
    hi = lo + arr.nbytes
    total = 0
    inside = False
    try:
        for line in open("/proc/self/smaps"):
            head = line.split()[0] if line.strip() else ""
            if "-" in head and ":" not in head:
                a, b = (int(x, 16) for x in head.split("-"))
                inside = a < hi and b > lo
            elif inside and head in ("AnonHugePages:", "ShmemPmdMapped:", "FilePmdMapped:"):
                total += int(line.split()[1]) * 1024
            elif inside and head == "KernelPageSize:" and int(line.split()[1]) >= 2048:
                total += min(hi, b) - max(lo, a)
    except OSError:
        return 0
    return total


class SharedBuffer:
    """A file-backed shared mapping other processes attach to by path.

    Created in a hugetlbfs mount when ``hugepages`` and one is mounted (huge pages
    shared between processes), else in ``/dev/shm`` (tmpfs, 4 KiB pages). The creator
    unlinks the file on ``close``.
    """

    def __init__(self, path: str, nbytes: int, create: bool, how: str):
        self.path, self.nbytes, self.owner, self.how = path, nbytes, create, how
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, self._map_size(path, nbytes))
            self._mm = mmap.mmap(fd, self._map_size(path, nbytes), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self.buf = np.frombuffer(self._mm, np.uint8)[:nbytes]

    @staticmethod
    def _map_size(path: str, nbytes: int) -> int:
        mount = hugetlbfs_mount()
        if mount and path.startswith(mount.rstrip("/") + "/"):
            return _round_up(nbytes, HUGE_PAGE_SZ)
        return _round_up(nbytes, mmap.PAGESIZE)

    @classmethod
    def create(cls, nbytes: int, hugepages: bool = False, prefix: str = "workbench") -> "SharedBuffer":
        name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        mount = hugetlbfs_mount() if hugepages else None
        if mount:
            try:
                return cls(str(Path(mount) / name), nbytes, True, f"hugetlbfs ({mount})")
            except OSError as e:
                why = f"hugetlbfs at {mount} refused ({e.strerror}; is vm.nr_hugepages > 0?)"
        else:
            why = ("no hugetlbfs mount (mount -t hugetlbfs none /dev/hugepages and set vm.nr_hugepages)"
                   if hugepages else "")
        how = "shared memory in /dev/shm, 4 KiB pages" + (f": huge pages unavailable: {why}" if hugepages else "")
        return cls(str(Path(SHM_DIR) / name), nbytes, True, how)

    @classmethod
    def attach(cls, path: str, nbytes: int) -> "SharedBuffer":
        return cls(path, nbytes, False, "attached")

    def close(self) -> None:
        self.buf = None
        try:
            self._mm.close()
        except (BufferError, ValueError):
            pass                               # an array still views it: the mapping goes with the array
        if self.owner:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.owner = False


def prefault(*arrays) -> int:
    """Touch (read, then write back) one byte per page of every array; returns bytes touched.

    A page's first write costs a page fault (and a transparent huge page, which numpy asks
    for on large arrays, its 2 MiB of zeroing and maybe a compaction). Live mode pays that
    at start-up, not on the first packets.
    NamedTuples of arrays (EngineState, BatchOut, ...) are walked field by field.
    """
    total = 0
    for a in arrays:
        if isinstance(a, tuple):
            total += prefault(*a)
            continue
        if not isinstance(a, np.ndarray) or a.size == 0 or not a.flags.c_contiguous or not a.flags.writeable:
            continue
        v = a.reshape(-1).view(np.uint8)
        v[::4096] = v[::4096].copy()
        total += v.shape[0]
    return total
