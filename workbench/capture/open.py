"""Open any supported capture by its magic number; pick a writer by suffix."""

from __future__ import annotations

import struct
from pathlib import Path

from ..errors import CaptureError
from .block_file import MAGIC as BLOCKS_MAGIC, BlockFileReader
from .pcap import MAGIC_MODIFIED, MAGIC_NSEC, MAGIC_USEC, PcapReader, PcapWriter, open_memmap
from .pcapng import BT_SHB, PcapngReader, PcapngWriter

_PCAP_MAGICS = {MAGIC_USEC, MAGIC_NSEC, MAGIC_MODIFIED}


def capture_format(path) -> str:
    """'pcap', 'pcapng' or 'blocks' (a backfilled-blocks Arrow file, block_file.py) from the
    first bytes; CaptureError otherwise."""
    p = Path(path)
    if not p.exists():
        raise CaptureError(p, "no such file")
    if p.is_dir():
        raise CaptureError(p, "is a directory, not a capture file")
    with open(p, "rb") as f:
        head = f.read(len(BLOCKS_MAGIC))
    if head == BLOCKS_MAGIC:
        return "blocks"
    head = head[:4]
    if len(head) < 4:
        raise CaptureError(p, f"only {len(head)} bytes: not a pcap or pcapng capture", 0)
    le, be = struct.unpack("<I", head)[0], struct.unpack(">I", head)[0]
    if le == BT_SHB:
        return "pcapng"
    if le in _PCAP_MAGICS or be in _PCAP_MAGICS:
        return "pcap"
    raise CaptureError(p, f"not a pcap or pcapng capture (magic bytes {head.hex()})", 0)


def open_capture(path, batch_frames: int = 16384):
    """A reader (PcapReader, PcapngReader or BlockFileReader) over the memory-mapped file."""
    fmt = capture_format(path)
    buf = open_memmap(path)
    if fmt == "blocks":
        return BlockFileReader(path, batch_frames, buf=buf)
    if fmt == "pcapng":
        return PcapngReader(path, batch_frames, buf=buf)
    return PcapReader(path, batch_frames, buf=buf)


def open_writer(path, linktype: int = 1, **kw):
    """PcapngWriter for *.pcapng, PcapWriter for *.pcap / *.cap."""
    suffix = Path(path).suffix.lower()
    if suffix == ".pcapng":
        return PcapngWriter(path, linktype=linktype, **kw)
    if suffix in (".pcap", ".cap", ".dmp"):
        return PcapWriter(path, linktype=linktype, **kw)
    raise CaptureError(path, f"unknown capture suffix {suffix!r}: use .pcap or .pcapng")
