"""Capture header and timestamp fields the readers must refuse or convert exactly, never wrap.

pcapng ``if_tsresol`` (10^-v or 2^-v s per unit), ``if_tsoffset``, the section header's
version, and files cut inside their first header: every bad value is a CaptureError that
names the file and the offset of the block that holds it, never a ZeroDivisionError nor a
timestamp of 0, -1 or garbage.
"""

from __future__ import annotations

import struct

import pytest

from workbench.capture import open_capture
from workbench.capture.pcap import PcapWriter
from workbench.capture.pcapng import MAX_BIN_EXP, MAX_DEC_EXP, PcapngWriter
from workbench.errors import CaptureError, CaptureTruncated

TS_S = 1_750_000_000           # a 2025 capture, in seconds
SHB_SZ, IDB_OFF = 28, 28       # our hand-built section header is 28 bytes; the IDB follows it
EPB_SZ = 36                    # the one packet block, last in the file


def block(bt, body, order="<"):
    body += b"\0" * (-len(body) % 4)
    return struct.pack(order + "II", bt, 12 + len(body)) + body + struct.pack(order + "I", 12 + len(body))


def pcapng(tsresol=None, units=TS_S * 10**6, tsoffset=None, major=1, minor=0, order="<"):
    """SHB, one Ethernet IDB with the given options, one EPB of 4 bytes at ``units``."""
    shb = block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, major, minor, -1), order)
    opts = b""
    if tsresol is not None:
        opts += struct.pack(order + "HHB3x", 9, 1, tsresol)
    if tsoffset is not None:
        opts += struct.pack(order + "HHq", 14, 8, tsoffset)
    idb = block(1, struct.pack(order + "HHI", 1, 0, 0) + opts + struct.pack(order + "HH", 0, 0), order)
    u = units & (2**64 - 1)
    epb = block(6, struct.pack(order + "IIIII", 0, u >> 32, u & 0xFFFFFFFF, 4, 4) + b"abcd", order)
    return shb + idb + epb


def read(tmp_path, data, name="x.pcapng"):
    p = tmp_path / name
    p.write_bytes(data)
    return p, [int(t) for b in open_capture(p) for t in b.ts_ns]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("exp", [0, 3, 6, 9, 12, 18, MAX_DEC_EXP])
def test_decimal_tsresol_converts_exactly(tmp_path, exp, order):
    units = TS_S * 10**exp + 123
    if units >= 2**64:           # too fine for a 2025 date in 64 bits: the largest count instead
        units = 2**64 - 1 - 977
    _, ts = read(tmp_path, pcapng(exp, units, order=order))
    assert ts == [units * 10**9 // 10**exp]


@pytest.mark.parametrize("exp", [0, 1, 10, 30, 33, 34, 40, 62, MAX_BIN_EXP])
def test_binary_tsresol_converts_exactly(tmp_path, exp):
    units = (TS_S << exp) + 0x5A5A5A5A if exp <= 30 else 2**64 - 1 - 977
    _, ts = read(tmp_path, pcapng(0x80 | exp, units))
    assert ts == [(units * 10**9) >> exp]


@pytest.mark.parametrize("raw", [MAX_DEC_EXP + 1, 28, 50, 72, 73, 100, 127, 0x80 | (MAX_BIN_EXP + 1), 0xFF])
def test_too_fine_tsresol_refused_at_the_interface_block(tmp_path, raw):
    p = tmp_path / "fine.pcapng"
    p.write_bytes(pcapng(raw))
    with pytest.raises(CaptureError, match="if_tsresol") as ei:
        list(open_capture(p))
    assert ei.value.offset == IDB_OFF and str(p) in str(ei.value) and f"0x{raw:02x}" in str(ei.value)


@pytest.mark.parametrize("tsresol,units", [(None, TS_S * 10**9), (6, 2**63), (9, 2**64 - 1), (0, 10**10),
                                           (0x80, 2**40), (0x80 | 1, 2**64 - 1)])
def test_time_outside_int64_ns_is_refused_not_wrapped(tmp_path, tsresol, units):
    """A nanosecond count under the default microsecond resolution would overflow int64 ns."""
    p = tmp_path / "big.pcapng"
    data = pcapng(tsresol, units)
    p.write_bytes(data)
    with pytest.raises(CaptureError, match="int64 nanoseconds") as ei:
        list(open_capture(p))
    assert ei.value.offset == len(data) - EPB_SZ and ei.value.frame == 0


@pytest.mark.parametrize("tsoffset,ok", [(-5, True), (2**32, True), (2**33, False), (2**62, False), (-(2**62), False),
                                         (-(TS_S + 1), False)])
def test_tsoffset_outside_int64_ns_is_refused(tmp_path, tsoffset, ok):
    data = pcapng(9, TS_S * 10**9, tsoffset=tsoffset)
    if ok:
        assert read(tmp_path, data)[1] == [(TS_S + tsoffset) * 10**9]
        return
    p = tmp_path / "off.pcapng"
    p.write_bytes(data)
    with pytest.raises(CaptureError, match="if_tsoffset|int64 nanoseconds") as ei:
        list(open_capture(p))
    assert ei.value.offset in (IDB_OFF, len(data) - EPB_SZ)


@pytest.mark.parametrize("major,minor", [(0, 0), (2, 0), (0xFFFF, 0xFFFF)])
@pytest.mark.parametrize("order", ["<", ">"])
def test_unknown_major_version_is_refused(tmp_path, major, minor, order):
    p = tmp_path / "v.pcapng"
    p.write_bytes(pcapng(6, major=major, minor=minor, order=order))
    with pytest.raises(CaptureError, match=f"version {major}.{minor}") as ei:
        list(open_capture(p))
    assert ei.value.offset == 0


def test_known_major_any_minor_reads(tmp_path):
    assert read(tmp_path, pcapng(6, TS_S * 10**6, minor=2))[1] == [TS_S * 10**9]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_file_cut_inside_its_first_header_says_truncated(tmp_path, fmt):
    """The magic is there, the header is not: truncated at offset 0, for every cut."""
    p = tmp_path / f"w.{fmt}"
    with (PcapWriter(p) if fmt == "pcap" else PcapngWriter(p)) as w:
        w.write(b"\0" * 60, TS_S * 10**9)
    data = p.read_bytes()
    header = 24 if fmt == "pcap" else SHB_SZ
    for cut in range(4, header):
        p.write_bytes(data[:cut])
        with pytest.raises(CaptureTruncated, match="truncated file") as ei:
            list(open_capture(p))
        assert ei.value.offset == 0 and f"{cut} of {header}" in str(ei.value), cut


def test_every_tsresol_byte_reads_exactly_or_is_refused_at_the_interface_block(tmp_path):
    p = tmp_path / "all.pcapng"
    for raw in range(256):
        exp, binary = raw & 0x7F, bool(raw & 0x80)
        for units in (1, 10**15, 2**64 - 1):
            p.write_bytes(pcapng(raw, units))
            ns = (units * 10**9) >> exp if binary else units * 10**9 // 10**exp
            try:
                ts = [int(t) for b in open_capture(p) for t in b.ts_ns]
            except CaptureError as e:
                too_fine = exp > (MAX_BIN_EXP if binary else MAX_DEC_EXP)
                assert e.offset == (IDB_OFF if too_fine else len(p.read_bytes()) - EPB_SZ), (raw, units)
                assert too_fine or ns >= 2**63, (raw, units)
                continue
            assert ts == [ns], (raw, units)
