"""Reading and writing the small text files of /proc and /sys under a root folder, and the
kernel's CPU-list format (``0-3,8``) both ways."""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import TuneError


def at(root: str | os.PathLike, path: str) -> Path:
    """``path`` (absolute, as on the host) under ``root``."""
    return Path(root) / path.lstrip("/")


def read(root, path: str) -> str | None:
    """The file's text, stripped; None when it does not exist or cannot be read."""
    try:
        return at(root, path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def read_int(root, path: str) -> int | None:
    text = read(root, path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_cpu_list(text: str, what: str = "CPU list") -> list[int]:
    """``0-3,8`` -> [0, 1, 2, 3, 8]; a TuneError naming ``what`` when it is not one."""
    cpus: set[int] = set()
    text = text.strip()
    if not text:
        return []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise TuneError(f"{what} {text!r}: {part!r} is not a CPU number or range like 2-5") from None
        if a < 0 or b < a:
            raise TuneError(f"{what} {text!r}: {part!r} is not a CPU number or range like 2-5")
        cpus.update(range(a, b + 1))
    return sorted(cpus)


def format_cpu_list(cpus) -> str:
    """[0, 1, 2, 3, 8] -> ``0-3,8`` (the kernel's own form)."""
    cpus = sorted(set(cpus))
    parts, i = [], 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(parts)


def mask_to_cpus(mask: str) -> list[int]:
    """A hex CPU mask as in ``rps_cpus`` (``00000000,0000000f``) -> CPU numbers."""
    try:
        value = int(mask.replace(",", ""), 16)
    except ValueError:
        return []
    return [i for i in range(value.bit_length()) if value >> i & 1]
