"""The report on one frame of a capture (``workbench inspect``): its layers, what the engine makes of it, and why.

The Python face of the kernels' status codes (STYLE rule 5): a rejected frame becomes a
``WireError`` naming the file, the frame and the byte offset of its UDP payload in the
file, e.g. ``demo.pcapng frame 1834 +0x5a: truncated``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .capture import open_capture
from .config import Settings
from .errors import CaptureError, WireError
from .wire.net import udp_payload
from .wire.shred import KIND_NONE, decode_shred_one, shred_kind
from .wire.status import status_name
from .wire.txn import decode_one


@dataclass
class FrameReport:
    capture: str
    frame: int
    file_offset: int              # first byte of the frame in the file
    ts_ns: int
    caplen: int
    wirelen: int
    linktype: int
    status: str                   # 'transaction', 'shred' or the reject reason
    payload_offset: int = -1      # first byte of the UDP payload in the file, -1 if none
    payload_sz: int = 0
    src_port: int = -1
    dst_port: int = -1
    transaction: dict = field(default_factory=dict)
    shred: dict = field(default_factory=dict)
    payload: bytes = b""          # the UDP payload's bytes (what dissect.describe_transaction reads)

    def error(self) -> WireError | None:
        """The WireError for a rejected frame (None if it decoded)."""
        if self.status in ("transaction", "shred"):
            return None
        where = self.payload_offset if self.payload_offset >= 0 else self.file_offset
        return WireError(self.capture, self.frame, where, self.status)


def find_frame(capture, index: int):
    """(batch, i) holding frame ``index``; CaptureError if the capture is shorter."""
    if index < 0:
        raise CaptureError(capture, f"frame {index}: frames are numbered from 0")
    n = 0
    for batch in open_capture(capture):
        if index < batch.first_index + batch.n:
            return batch, index - batch.first_index
        n = batch.first_index + batch.n
    raise CaptureError(capture, f"frame {index}: the capture has {n} frames")


def inspect_frame(capture, index: int, settings: Settings | None = None) -> FrameReport:
    """What the engine makes of frame ``index`` (same port rules as the engine)."""
    settings = settings or Settings()
    batch, i = find_frame(capture, index)
    off, cl = int(batch.off[i]), int(batch.caplen[i])
    rep = FrameReport(str(Path(capture)), index, off, int(batch.ts_ns[i]), cl, int(batch.wirelen[i]),
                      int(batch.linktype[i]), "")
    st, poff, psz, sport, dport = udp_payload(batch.buf, off, cl, int(batch.linktype[i]))
    if st != 0:
        rep.status = status_name(st)
        return rep
    rep.payload_offset, rep.payload_sz, rep.src_port, rep.dst_port = int(poff), int(psz), int(sport), int(dport)
    payload = rep.payload = bytes(batch.buf[poff:poff + psz])
    if dport in settings.ignore_ports and dport not in settings.transaction_ports + settings.shred_ports:
        rep.status = "not_solana"
        return rep
    code, t, instrs, luts = decode_one(payload)
    if dport in settings.shred_ports:
        code = -1
    if code == 0:
        rep.status = "transaction"
        rep.transaction = {name: (int(t[name]) if np.ndim(t[name]) == 0 else t[name].tolist())
                           for name in t.dtype.names}
        rep.transaction["instructions"] = [{k: int(r[k]) for k in r.dtype.names} for r in instrs]
        return rep
    if dport not in settings.transaction_ports and (
            dport in settings.shred_ports or shred_kind(np.frombuffer(payload, np.uint8), 0, len(payload)) != KIND_NONE):
        scode, row = decode_shred_one(payload)
        rep.status = status_name(scode) if scode < 0 else "shred"
        if row is not None:
            rep.shred = {k: int(row[k]) for k in row.dtype.names}
        return rep
    rep.status = status_name(code)
    return rep
