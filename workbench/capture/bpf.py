"""A classic BPF program that keeps UDP to the configured destination ports, and attaching it.

The AF_PACKET source (afpacket.py) attaches it to its socket so that the kernel drops
every other frame before it reaches the ring: the ring's space and the engine's time go
to the ports the workbench decodes. Spec: Linux ``Documentation/networking/filter.rst``
and ``<linux/filter.h>``.
"""

from __future__ import annotations

import ctypes
import socket

from ..errors import ConfigError
from .kernel import SO_ATTACH_FILTER, SOL_SOCKET

# <linux/filter.h> / <linux/bpf_common.h> opcodes
BPF_LD_H_ABS = 0x28     # A = u16 at [k]
BPF_LD_B_ABS = 0x30     # A = u8 at [k]
BPF_LDX_B_MSH = 0xB1    # X = 4 * ([k] & 0x0f)
BPF_LD_H_IND = 0x48     # A = u16 at [X + k]
BPF_JEQ_K = 0x15        # pc += (A == k) ? jt : jf
BPF_JGT_K = 0x25
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45       # pc += (A & k) ? jt : jf
BPF_RET_K = 0x06        # return k (bytes to keep; 0 drops)
SNAP_ALL = 0x40000      # bytes kept of an accepted frame (the ring truncates to its space anyway)
BPF_MAX_RANGES = 48     # port ranges one program tests (jump offsets are 8 bits)


def _port_ranges(ports) -> list[tuple[int, int]]:
    ranges: list[list[int]] = []
    for p in sorted(set(int(p) for p in ports)):
        if ranges and p == ranges[-1][1] + 1:
            ranges[-1][1] = p
        else:
            ranges.append([p, p])
    return [(a, b) for a, b in ranges]


def udp_port_filter(ports) -> list[tuple[int, int, int, int]]:
    """Classic BPF program: accept UDP (IPv4 or IPv6, untagged or one VLAN tag left in the
    frame) whose destination port is in ``ports``; drop everything else.

    IPv4 fragments with a nonzero offset carry no UDP header and are dropped; a first
    fragment is kept when its port matches (the engine counts it as ``ip_fragment``).
    IPv6 is matched when UDP is the first next header (no extension headers).
    Returns ``(code, jt, jf, k)`` tuples (``struct sock_filter``).
    """
    ranges = _port_ranges(ports)
    if not ranges:
        raise ConfigError("udp_port_filter: no ports given")
    if len(ranges) > BPF_MAX_RANGES:
        raise ConfigError(f"{len(ranges)} separate port ranges: the capture filter takes at most {BPF_MAX_RANGES}; "
                          "merge them into ranges like 8000-8020")
    prog: list[list] = []          # [code, jt(label|int), jf(label|int), k]
    labels: dict[str, int] = {}

    def emit(code, k=0, jt=0, jf=0):
        prog.append([code, jt, jf, k])

    def label(name):
        labels[name] = len(prog)

    def ports_check(tag):
        # A holds the destination port
        for i, (lo, hi) in enumerate(ranges):
            nxt = f"{tag}_r{i + 1}" if i + 1 < len(ranges) else "drop"
            label(f"{tag}_r{i}")
            if lo == hi:
                emit(BPF_JEQ_K, lo, "accept", nxt)
            else:
                emit(BPF_JGE_K, lo, 0, nxt)
                emit(BPF_JGT_K, hi, nxt, "accept")

    for vlan, l2 in ((False, 14), (True, 18)):
        tag = "v" if vlan else "u"
        if not vlan:
            emit(BPF_LD_H_ABS, 12)
            emit(BPF_JEQ_K, 0x8100, "vlan", 0)
            emit(BPF_JEQ_K, 0x88A8, "vlan", 0)
        else:
            label("vlan")
            emit(BPF_LD_H_ABS, 16)
        emit(BPF_JEQ_K, 0x0800, 0, f"{tag}_ip6")
        emit(BPF_LD_B_ABS, l2 + 9)                      # IPv4 protocol
        emit(BPF_JEQ_K, 17, 0, "drop")
        emit(BPF_LD_H_ABS, l2 + 6)                      # flags + fragment offset
        emit(BPF_JSET_K, 0x1FFF, "drop", 0)
        emit(BPF_LDX_B_MSH, l2)                         # X = IPv4 header length
        emit(BPF_LD_H_IND, l2 + 2)                      # UDP destination port
        ports_check(f"{tag}4")
        label(f"{tag}_ip6")
        emit(BPF_JEQ_K, 0x86DD, 0, "drop")
        emit(BPF_LD_B_ABS, l2 + 6)                      # IPv6 next header
        emit(BPF_JEQ_K, 17, 0, "drop")
        emit(BPF_LD_H_ABS, l2 + 40 + 2)                 # UDP destination port
        ports_check(f"{tag}6")
    label("accept")
    emit(BPF_RET_K, SNAP_ALL)
    label("drop")
    emit(BPF_RET_K, 0)
    out = []
    for pc, (code, jt, jf, k) in enumerate(prog):
        rel = []
        for j in (jt, jf):
            if isinstance(j, str):
                j = labels[j] - pc - 1
            if not 0 <= j <= 255:
                raise ConfigError("capture filter too long for 8-bit jumps: use fewer port ranges")
            rel.append(j)
        out.append((code, rel[0], rel[1], k))
    return out


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def attach_filter(sock: socket.socket, program) -> None:
    """``SO_ATTACH_FILTER`` a classic BPF program (list of ``(code, jt, jf, k)``)."""
    arr = (_SockFilter * len(program))(*[_SockFilter(*ins) for ins in program])
    fprog = _SockFprog(len(program), ctypes.cast(arr, ctypes.POINTER(_SockFilter)))
    sock.setsockopt(SOL_SOCKET, SO_ATTACH_FILTER, bytes(memoryview(fprog)))   # the kernel copies the program
