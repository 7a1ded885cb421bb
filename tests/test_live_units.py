"""Live-mode parts that need no root: the ring-block parser on hand-built blocks, the BPF
capture filter against a Python twin interpreter, the UDP source on loopback, a whole
in-process live run on loopback with replay parity, the clocks and the host helpers."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import CAPTURES
from workbench.capture import open_capture
from workbench.capture.afpacket import (AF_PACKET, BD_BLK_LEN, BD_BLOCK_STATUS, BD_NUM_PKTS,
                                        BLOCK_FIRST_PKT, CUR_BLOCK, CUR_COLS,
                                        CUR_OUTGOING, CUR_PEEKED, CUR_POS, CUR_RETIRED, CUR_VLAN, H3_MAC,
                                        H3_NEXT_OFFSET, H3_SEC, H3_SNAPLEN, H3_STATUS, H3_VLAN_TCI,
                                        PACKET_OUTGOING, SLL_FAMILY, SLL_HATYPE, SLL_PKTTYPE, TP_STATUS_USER,
                                        TP_STATUS_VLAN_VALID, release_block, scan_ring)
from workbench.capture.bpf import (BPF_JEQ_K, BPF_JGE_K, BPF_JGT_K, BPF_JSET_K, BPF_LD_B_ABS, BPF_LD_H_ABS,
                                   BPF_LD_H_IND, BPF_LDX_B_MSH, BPF_RET_K, udp_port_filter)
from workbench.capture.pcap import PcapWriter
from workbench.capture.sender import send_capture
from workbench.capture.udp import HDR_SZ, UdpSource
from workbench.config import Settings
from workbench.errors import ConfigError
from workbench.host import SharedBuffer, alloc_buffer, pin_thread
from workbench.host.memory import prefault
from workbench.capture.clock import realtime_ns
from workbench.metrics.clock import record_age
from workbench.metrics.hist import new_histograms
from workbench.runner import live, replay
from workbench.wire.net import udp_payload

BLOCK = 4096
MAC_OFF = 82          # tp_mac of a SOCK_RAW V3 frame: TPACKET_ALIGN(68 + 16) - 14


def _put(ring, off, fmt, *vals):
    ring[off:off + struct.calcsize(fmt)] = np.frombuffer(struct.pack(fmt, *vals), np.uint8)


def _frame(ring, fp, data: bytes, ts_ns: int, nxt: int, complete=True, vlan_tci=None, outgoing=False):
    """Write one frame the way tpacket_rcv does: header, data at tp_mac, sockaddr_ll last."""
    status = TP_STATUS_USER | (TP_STATUS_VLAN_VALID if vlan_tci is not None else 0)
    _put(ring, fp + H3_NEXT_OFFSET, "<I", nxt)
    _put(ring, fp + H3_SEC, "<II", ts_ns // 10**9, ts_ns % 10**9)
    _put(ring, fp + H3_SNAPLEN, "<II", len(data), len(data))
    _put(ring, fp + H3_STATUS, "<I", status)
    _put(ring, fp + H3_MAC, "<HH", MAC_OFF, MAC_OFF + 14)
    _put(ring, fp + H3_VLAN_TCI, "<I", vlan_tci or 0)
    ring[fp + MAC_OFF:fp + MAC_OFF + len(data)] = np.frombuffer(data, np.uint8)
    if complete:
        _put(ring, fp + SLL_HATYPE, "<H", 1)
        ring[fp + SLL_PKTTYPE] = PACKET_OUTGOING if outgoing else 0
        _put(ring, fp + SLL_FAMILY, "<H", AF_PACKET)


def _cols(n=16):
    return (np.zeros(n, np.int64), np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.int64),
            np.zeros(n, np.int32))


def _eth(i: int, n: int = 60) -> bytes:
    return bytes(range(1, 13)) + b"\x08\x00" + bytes([i]) * (n - 14)


def test_scan_ring_reads_a_retired_block_restores_vlan_tags_skips_outgoing_and_release_zeroes_it():
    ring = np.zeros(2 * BLOCK, np.uint8)
    frames = [_eth(1), _eth(2, 100), _eth(3)]
    pos = BLOCK_FIRST_PKT
    for k, f in enumerate(frames):
        nxt = 0 if k == 2 else 256
        _frame(ring, pos, f, 1_750_000_000_123_456_789 + k, nxt, vlan_tci=(0x2064 if k == 1 else None),
               outgoing=(k == 2))
        pos += 256
    _put(ring, BD_NUM_PKTS, "<II", 3, BLOCK_FIRST_PKT)
    _put(ring, BD_BLK_LEN, "<I", pos)
    _put(ring, BD_BLOCK_STATUS, "<I", TP_STATUS_USER)
    cur = np.zeros(CUR_COLS, np.int64)
    cur[CUR_POS] = BLOCK_FIRST_PKT
    off, caplen, wirelen, ts, lt = cols = _cols()
    n = scan_ring(ring, cur, BLOCK, 2, 1, False, *cols, 0, 16)
    assert n == 2 and cur[CUR_RETIRED] == 1 and cur[CUR_OUTGOING] == 1 and cur[CUR_VLAN] == 1
    assert bytes(ring[off[0]:off[0] + caplen[0]]) == frames[0]
    tagged = bytes(ring[off[1]:off[1] + caplen[1]])
    assert tagged == frames[1][:12] + b"\x81\x00\x20\x64" + frames[1][12:]       # 802.1Q tag back in place
    assert caplen[1] == wirelen[1] == 104
    assert list(ts[:2]) == [1_750_000_000_123_456_789, 1_750_000_000_123_456_790]
    assert scan_ring(ring, cur, BLOCK, 2, 1, False, *cols, 0, 16) == 0          # nothing until released
    assert release_block(ring, cur, BLOCK, 2) == 1
    assert cur[CUR_BLOCK] == 1 and cur[CUR_RETIRED] == 0
    assert not ring[BLOCK_FIRST_PKT:BLOCK].any() and ring[BD_BLOCK_STATUS] == 0  # zeroed, owned by the kernel


def test_peek_hands_out_complete_frames_of_an_open_block_only():
    ring = np.zeros(2 * BLOCK, np.uint8)
    _frame(ring, BLOCK_FIRST_PKT, _eth(7), 10, 256)
    _frame(ring, BLOCK_FIRST_PKT + 256, _eth(8), 11, 256, complete=False)       # the kernel is still copying it
    _put(ring, BD_NUM_PKTS, "<I", 2)
    cur = np.zeros(CUR_COLS, np.int64)
    cur[CUR_POS] = BLOCK_FIRST_PKT
    cols = _cols()
    assert scan_ring(ring, cur, BLOCK, 2, 1, False, *cols, 0, 16) == 0         # no peek: wait for the retire
    assert scan_ring(ring, cur, BLOCK, 2, 1, True, *cols, 0, 16) == 1
    assert cur[CUR_PEEKED] == 1 and cols[3][0] == 10
    assert scan_ring(ring, cur, BLOCK, 2, 1, True, *cols, 0, 16) == 0
    _put(ring, BLOCK_FIRST_PKT + 256 + SLL_FAMILY, "<H", AF_PACKET)            # ... done now
    assert scan_ring(ring, cur, BLOCK, 2, 1, True, *cols, 0, 16) == 1 and cols[3][0] == 11
    _put(ring, BLOCK_FIRST_PKT + 256 + H3_NEXT_OFFSET, "<I", 0)                 # the kernel closes the block
    _put(ring, BD_BLOCK_STATUS, "<I", TP_STATUS_USER)
    _put(ring, BD_BLK_LEN, "<I", BLOCK_FIRST_PKT + 512)
    assert scan_ring(ring, cur, BLOCK, 2, 1, True, *cols, 0, 16) == 0 and cur[CUR_RETIRED] == 1
    release_block(ring, cur, BLOCK, 2)
    assert cur[CUR_BLOCK] == 1


# --- the capture filter against a twin: a classic BPF interpreter in Python ---------------------
def _run_bpf(prog, pkt: bytes) -> int:
    a = x = 0
    pc = 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        try:
            if code == BPF_LD_H_ABS:
                a = struct.unpack("!H", pkt[k:k + 2])[0] if k + 2 <= len(pkt) else None
            elif code == BPF_LD_B_ABS:
                a = pkt[k] if k < len(pkt) else None
            elif code == BPF_LDX_B_MSH:
                if k >= len(pkt):
                    return 0
                x = (pkt[k] & 0x0F) * 4
            elif code == BPF_LD_H_IND:
                a = struct.unpack("!H", pkt[x + k:x + k + 2])[0] if x + k + 2 <= len(pkt) else None
            elif code in (BPF_JEQ_K, BPF_JGT_K, BPF_JGE_K, BPF_JSET_K):
                cond = {BPF_JEQ_K: a == k, BPF_JGT_K: a > k, BPF_JGE_K: a >= k, BPF_JSET_K: bool(a & k)}[code]
                pc += jt if cond else jf
            elif code == BPF_RET_K:
                return k
            else:
                raise AssertionError(f"opcode {code:#x}")
        except TypeError:
            return 0
        if a is None:                          # a load past the end: the kernel drops the packet
            return 0


def _want(pkt: bytes, ports) -> bool:
    """Kept: UDP (IPv4 not a later fragment, or IPv6 with UDP next) to one of ``ports``, untagged or
    behind one VLAN tag. A header the frame is too short to hold means dropped."""
    if len(pkt) < 14:
        return False
    p, et = 14, struct.unpack("!H", pkt[12:14])[0]
    if et in (0x8100, 0x88A8):
        if len(pkt) < 18:
            return False
        p, et = 18, struct.unpack("!H", pkt[16:18])[0]
    if et == 0x0800:
        if len(pkt) < p + 10 or pkt[p + 9] != 17 or struct.unpack("!H", pkt[p + 6:p + 8])[0] & 0x1FFF:
            return False
        q = p + (pkt[p] & 0x0F) * 4
    elif et == 0x86DD:
        if len(pkt) < p + 7 or pkt[p + 6] != 17:
            return False
        q = p + 40
    else:
        return False
    return len(pkt) >= q + 4 and struct.unpack("!H", pkt[q + 2:q + 4])[0] in ports


@pytest.mark.parametrize("ports", [[8003], [53, 123], list(range(8000, 8010)) + [8020, 9000], [1, 65535]])
def test_capture_filter_matches_its_python_twin(ports):
    prog = udp_port_filter(ports)
    frames = []
    for cap in (CAPTURES / "demo.pcapng", CAPTURES / "small.pcap"):
        for b in open_capture(cap):
            frames += [bytes(b.frame(i)) for i in range(b.n)]
    rng = np.random.default_rng(3)
    v6 = (bytes(12) + b"\x86\xdd" + bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + bytes(32)
          + struct.pack("!HHHH", 5, 8003, 8, 0))
    frames += [v6, v6[:40]] + [rng.integers(0, 256, int(rng.integers(1, 80)), dtype=np.uint8).tobytes()
                               for _ in range(500)]
    got = [_run_bpf(prog, f) > 0 for f in frames]
    want = [_want(f, set(ports)) for f in frames]
    assert got == want
    assert any(got) or ports == [1, 65535]


def test_capture_filter_refuses_too_many_ranges():
    with pytest.raises(ConfigError, match="ranges"):
        udp_port_filter(list(range(1000, 1200, 2)))


# --- the UDP source on loopback -------------------------------------------------------------------
def _free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _demo_payloads(n=None):
    """(frame, ts, payload) of demo.pcapng's untagged IPv4 UDP frames to port 8003 (not fragments)."""
    out = []
    for b in open_capture(CAPTURES / "demo.pcapng"):
        for i in range(b.n):
            f = bytes(b.frame(i))
            if f[12:14] != b"\x08\x00" or f[23] != 17 or struct.unpack("!H", f[20:22])[0] & 0x3FFF:
                continue
            if struct.unpack("!H", f[36:38])[0] != 8003:
                continue
            out.append((f, int(b.ts_ns[i]), f[42:14 + struct.unpack("!H", f[16:18])[0]]))
    return out[:n] if n else out


def test_udp_source_hands_datagrams_as_raw_ip_frames_with_kernel_timestamps():
    port = _free_udp_port()
    payloads = [p for _, _, p in _demo_payloads(300)]
    with UdpSource([port], bind_addr="127.0.0.1", rcvbuf=4 << 20, batch=64) as src:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t_before = time.time_ns()
        for p in payloads:
            tx.sendto(p, ("127.0.0.1", port))
        sport = tx.getsockname()[1]
        got = []
        deadline = time.monotonic() + 10
        while len(got) < len(payloads) and time.monotonic() < deadline:
            b = src.poll()
            if b is None:
                time.sleep(0.001)
                continue
            for i in range(b.n):
                st, poff, psz, sp, dp = udp_payload(b.buf, b.off[i], b.caplen[i], b.linktype[i])
                assert (st, sp, dp) == (0, sport, port)
                assert poff == b.off[i] + HDR_SZ
                got.append((bytes(b.buf[poff:poff + psz]), int(b.ts_ns[i])))
        tx.close()
        assert [g for g, _ in got] == payloads
        assert all(t_before <= t <= time.time_ns() for _, t in got)
        assert src.drops() == 0 and src.counters()["datagrams"] == len(payloads)


def test_udp_source_needs_ports():
    with pytest.raises(ConfigError, match="ports"):
        UdpSource([])


def test_in_process_udp_live_run_equals_replay_and_flushes_everything(tmp_path):
    """`live()` end to end without root: UDP on loopback, stopped by an Event."""
    port = _free_udp_port()
    items = _demo_payloads()
    ref = tmp_path / "ref.pcap"
    with PcapWriter(ref) as w:
        for f, ts, _ in items:
            w.write(f, ts)
    stop = threading.Event()
    ready = threading.Event()
    statuses = []

    def sender():
        ready.wait(600)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for k, (_, _, p) in enumerate(items):
            s.sendto(p, ("127.0.0.1", port))
            if k % 100 == 99:
                time.sleep(0.002)                  # ~50k datagrams/s, in bursts of 100
        s.close()
        time.sleep(0.5)
        stop.set()

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    settings = Settings(udp_bind_addr="127.0.0.1", live_slice_ms=20)
    res = live(None, tmp_path / "live", settings, source="udp", ports=[port], stop=stop, duration=120,
               record=tmp_path / "rec.pcapng", on_ready=lambda msg: ready.set(), on_status=statuses.append,
               status_every_s=0.05)
    t.join(10)
    rep = replay(ref, tmp_path / "replay", Settings())
    assert res.packets == rep.packets == len(items) and res.drops == 0
    assert res.by_status == rep.by_status and res.stop_reason.startswith("signal or stop")
    assert res.latency_ns["count"] == len(items) and 0 < res.latency_ns["p50"] <= res.latency_ns["p99"]
    a = pq.read_table(tmp_path / "live/tx_features.parquet").drop(["ts_ns", "origin_ts_ns"])
    b = pq.read_table(tmp_path / "replay/tx_features.parquet").drop(["ts_ns", "origin_ts_ns"])
    assert a.equals(b)
    assert res.recorded["frames"] == len(items)
    assert statuses and statuses[-1].packets <= res.packets
    again = replay(tmp_path / "rec.pcapng", tmp_path / "again", Settings())
    assert pq.read_table(tmp_path / "again/tx_features.parquet").drop(["ts_ns", "origin_ts_ns"]).equals(b)
    assert again.by_status == rep.by_status


def test_live_checks_its_arguments(tmp_path):
    with pytest.raises(ConfigError, match="--iface"):
        live(None, tmp_path, source="afpacket")
    with pytest.raises(ConfigError, match="source"):
        live("lo", tmp_path, source="pcap")
    with pytest.raises(ConfigError, match="ports"):
        live(None, tmp_path, source="udp")


def test_send_checks_its_arguments(tmp_path):
    with pytest.raises(ConfigError, match="one of"):
        send_capture(CAPTURES / "small.pcap", "lo", speed=1.0, pps=10)
    with pytest.raises(ConfigError, match="loop"):
        send_capture(CAPTURES / "small.pcap", "lo", loop=0)


# --- clocks and host helpers ---------------------------------------------------------------------
def test_realtime_clock_and_age_recording():
    assert abs(realtime_ns() - time.time_ns()) < 50_000_000
    counts, stats = new_histograms(1)
    now = realtime_ns()
    ts = np.array([now - 1000, -1, now - 5000, now + 10], np.int64)      # -1: no timestamp; future: counts as 0
    assert record_age(counts, stats, 0, ts, 0, 4, now) == 3
    assert stats[0, 0] == 3 and stats[0, 2] == 5000 and stats[0, 1] == 0


def test_pinning_to_a_cpu_the_host_lacks_is_refused_with_a_reason():
    g = pin_thread(4096)
    assert not g.granted and "CPUs" in g.detail


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs setpriv and root")
def test_sched_fifo_refusal_is_reported_clearly():
    code = "from workbench.host import request_fifo; print(request_fifo(10))"
    r = subprocess.run(["setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice", sys.executable, "-c",
                        code], capture_output=True, text=True, timeout=120)
    if r.returncode != 0 and "setpriv" in r.stderr:
        pytest.skip(f"setpriv cannot drop CAP_SYS_NICE here: {r.stderr.strip()}")
    assert "SCHED_FIFO priority 10: REFUSED" in r.stdout and "CAP_SYS_NICE" in r.stdout, r.stdout + r.stderr


def test_sched_fifo_is_granted_to_root_in_a_child():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    r = subprocess.run([sys.executable, "-c", "from workbench.host import request_fifo; print(request_fifo(10))"],
                       capture_output=True, text=True, timeout=120)
    if "REFUSED" in r.stdout:                 # a container without RT bandwidth: the refusal names the cause
        assert "the host refused" in r.stdout
        pytest.skip(f"this host refuses SCHED_FIFO even to root: {r.stdout.strip()}")
    assert "SCHED_FIFO priority 10: yes" in r.stdout and "RT throttling" in r.stdout, r.stdout + r.stderr


def test_huge_page_buffers_say_what_backs_them():
    buf, how = alloc_buffer(5 << 20, hugepages=True)
    assert buf.shape[0] == 5 << 20 and buf.ctypes.data % (2 << 20) == 0 and "pages" in how
    buf2, how2 = alloc_buffer(1000)
    assert buf2.shape[0] == 1000 and how2 == "4 KiB pages"
    assert prefault(buf, (buf2, np.zeros(3))) == buf.nbytes + buf2.nbytes + 24


def test_shared_buffer_is_seen_by_an_attacher_and_removed_by_its_creator():
    a = SharedBuffer.create(10_000, prefix="workbench-test")
    b = SharedBuffer.attach(a.path, 10_000)
    a.buf[123] = 7
    assert b.buf[123] == 7
    b.close()
    path = a.path
    a.close()
    assert not os.path.exists(path)


def test_rt_pace_keeps_a_spinning_loop_inside_its_rt_share():
    from workbench.capture.poll import (P_IDLE_SLEEP_US, P_IDLE_SPIN_NS, P_RT_PACE_NS, P_RT_SLEEP_US,
                                        idle_sleep_us, new_params)
    from workbench.host.cpu import rt_pace_ns
    assert rt_pace_ns(20, share=None) == 0 and rt_pace_ns(20, share=1.0) == 0       # no throttling: no pacing
    pace = rt_pace_ns(20, share=0.95)
    assert pace == 266_000                        # 0.7 * 20 us * 0.95 / 0.05
    assert 20_000 / (pace + 20_000) > 0.05        # asleep more than the 5 % the kernel keeps
    p = new_params(0, 64, 2_000_000, 50, False, 0, rt_pace_ns=pace)
    assert p[P_RT_SLEEP_US] > 0
    now = 10**12
    assert idle_sleep_us(now, now - 1_000, now - pace - 1, p) == p[P_RT_SLEEP_US]   # ran too long: pace
    assert idle_sleep_us(now, now - 1_000, now - 1_000, p) == 0                     # busy, recently slept: spin
    assert idle_sleep_us(now, now - p[P_IDLE_SPIN_NS] - 1, now - 1_000, p) == p[P_IDLE_SLEEP_US]   # idle
    p[P_RT_PACE_NS] = 0
    assert idle_sleep_us(now, now - 1_000, now - 10**9, p) == 0                     # pacing off: spin
