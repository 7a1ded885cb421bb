"""Live mode on real sockets: a network namespace, a veth pair, `workbench send` into one end,
`workbench live` on the other (as root; CI runs as root).

Replay-live parity, precisely. The tx_features rows of a live run are compared with the
replay rows of the capture that was sent, EVERY column except the two event times
``ts_ns`` and ``origin_ts_ns``: live mode stamps a frame with the kernel's receive time,
replay with the capture's time, and that is the one thing that must differ. Everything
else, ``tx_index`` and ``packet_index`` included, must be equal: the same frames in the
same order give the same transactions, duplicates and indexes. Packet statuses are
compared frame by frame (so per kind as well).

- AF_PACKET sees every frame the sender put on the wire (no filter), VLAN tags restored,
  so the reference is the replay of the sent capture itself.
- A UDP socket sees what the host's IP stack delivers to its port: untagged IPv4 UDP to
  the validator's address and port, not fragments, not other ports or protocols. The
  reference is the replay of exactly those frames of the capture (``delivered_frames``).

Every test makes its own namespace and veth pair, bounds every wait, and removes them.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import CAPTURES
from workbench.capture import open_capture
from workbench.capture.pcap import PcapWriter
from workbench.config import Settings
from workbench.runner import replay

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="live tests need root and iproute2 (CI runs them as root)")

CAPTURE = CAPTURES / "demo.pcapng"
PPS = 50_000                     # the rate the parity and drop tests send at
LOOPS = 5                        # passes of demo.pcapng (3,996 frames each) in the 50k pps test
READY_TIMEOUT_S = 600            # `workbench live` start: a cold numba cache compiles the live loop
STOP_TIMEOUT_S = 120             # from the stop signal to the process exit (everything flushed)
SETTLE_S = 0.5                   # after the last frame is sent, before the stop signal
VALIDATOR_MAC = "b8:ce:f6:a1:b2:c3"   # synth/frame.py: destination MAC of the capture's transactions
VALIDATOR_IP = "10.0.0.1"
TXN_PORT = 8003
EVENT_TIME_COLUMNS = ("ts_ns", "origin_ts_ns")
CLONE_NEWNET = 0x40000000


def _sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


class Veth:
    """Namespace ``ns`` holding ``rx``; ``tx`` stays in this namespace. Removed by ``close``."""

    def __init__(self, ip_stack: bool = False):
        tag = uuid.uuid4().hex[:6]
        self.ns, self.tx, self.rx = f"wbt-{tag}", f"wbt{tag}a", f"wbt{tag}b"
        _sh("ip", "netns", "add", self.ns)
        try:
            _sh("ip", "link", "add", self.tx, "type", "veth", "peer", "name", self.rx, "netns", self.ns)
            _sh("sysctl", "-qw", f"net.ipv6.conf.{self.tx}.disable_ipv6=1")
            self.nsx("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            self.nsx("sysctl", "-qw", f"net.ipv6.conf.{self.rx}.disable_ipv6=1")
            if ip_stack:                       # the rx end is the validator: its MAC and address
                self.nsx("ip", "link", "set", self.rx, "address", VALIDATOR_MAC)
                self.nsx("ip", "addr", "add", f"{VALIDATOR_IP}/8", "dev", self.rx)
                self.nsx("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
                self.nsx("sysctl", "-qw", f"net.ipv4.conf.{self.rx}.rp_filter=0")
            _sh("ip", "link", "set", self.tx, "up")
            self.nsx("ip", "link", "set", self.rx, "up")
            self.nsx("ip", "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def nsx(self, *args):
        return _sh("ip", "netns", "exec", self.ns, *args)

    def close(self):
        _sh("ip", "netns", "del", self.ns, check=False)      # takes the veth pair with it
        _sh("ip", "link", "del", self.tx, check=False)


@pytest.fixture
def veth():
    v = Veth()
    yield v
    v.close()


@pytest.fixture
def veth_ip():
    v = Veth(ip_stack=True)
    yield v
    v.close()


class Live:
    """`workbench live` in the namespace, started and waited for until it is capturing."""

    def __init__(self, v: Veth, out: Path, *args: str):
        self.out = out
        cmd = ["ip", "netns", "exec", v.ns, sys.executable, "-m", "workbench.cli", "live", "--out", str(out),
               "--no-db", "--quiet", "--duration", "300", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.ready = threading.Event()
        self._t = threading.Thread(target=self._read_err, daemon=True)
        self._t.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                out = self.proc.stdout.read() if self.proc.stdout else ""
                pytest.fail(f"workbench live did not start: rc={self.proc.returncode}\n{out}\n{''.join(self.err)}")

    def _read_err(self):
        for line in self.proc.stderr:
            self.err.append(line)
            if "capturing on" in line:
                self.ready.set()

    def stop(self, sig=signal.SIGINT) -> dict:
        time.sleep(SETTLE_S)
        self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail("workbench live did not stop within the timeout")
        self._t.join(5)
        assert self.proc.returncode == 0, f"rc={self.proc.returncode}\n{out}\n{''.join(self.err)}"
        self.output = out                                 # the printed summary
        return json.loads((self.out / "summary.json").read_text())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def send(iface: str, capture: Path, pps: int = PPS, loop: int = 1) -> dict:
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "send", str(capture), "--iface", iface, "--pps",
                        str(pps), "--loop", str(loop), "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def frames_of(capture: Path) -> list[tuple[bytes, int]]:
    out = []
    for b in open_capture(capture):
        out += [(bytes(b.frame(i)), int(b.ts_ns[i])) for i in range(b.n)]
    return out


def write_pcap(path: Path, frames) -> Path:
    with PcapWriter(path) as w:
        for f, ts in frames:
            w.write(f, ts)
    return path


def looped(frames, loops: int):
    """The frames ``loops`` times, each pass after the previous one (what `send --loop` puts on the wire)."""
    span = frames[-1][1] - frames[0][1] + 1000
    return [(f, ts + k * span) for k in range(loops) for f, ts in frames]


def delivered_frames(frames, port: int = TXN_PORT):
    """The frames a UDP socket bound to ``port`` on VALIDATOR_IP receives: untagged IPv4 UDP to
    that address and port, not a fragment, to the validator's MAC (checksums are valid in synth)."""
    dst_mac = bytes.fromhex(VALIDATOR_MAC.replace(":", ""))
    dst_ip = bytes(int(x) for x in VALIDATOR_IP.split("."))
    keep = []
    for f, ts in frames:
        if len(f) < 42 or f[:6] != dst_mac or f[12:14] != b"\x08\x00":
            continue
        ip = f[14:]
        ihl = (ip[0] & 0x0F) * 4
        flags_frag = struct.unpack("!H", ip[6:8])[0]
        if ip[0] >> 4 != 4 or ip[9] != 17 or flags_frag & 0x3FFF or ip[16:20] != dst_ip:
            continue
        if struct.unpack("!H", ip[ihl + 2:ihl + 4])[0] != port:
            continue
        keep.append((f, ts))
    return keep


def assert_parity(live_dir: Path, replay_dir: Path):
    a = pq.read_table(live_dir / "tx_features.parquet")
    b = pq.read_table(replay_dir / "tx_features.parquet")
    assert a.num_rows == b.num_rows, f"live {a.num_rows} rows, replay {b.num_rows}"
    assert a.num_rows > 0
    for col in b.column_names:
        if col in EVENT_TIME_COLUMNS:
            continue
        assert a.column(col).equals(b.column(col)), f"column {col} differs"
    sa = pq.read_table(live_dir / "packet_status.parquet")
    sb = pq.read_table(replay_dir / "packet_status.parquet")
    assert sa.column("packet_index").equals(sb.column("packet_index"))
    assert sa.column("status").to_pylist() == sb.column("status").to_pylist()


def test_afpacket_live_equals_replay_at_50k_pps_with_zero_drops_and_its_recording_replays_the_same(veth, tmp_path):
    sent_cap = write_pcap(tmp_path / "sent.pcap", looped(frames_of(CAPTURE), LOOPS))
    rec = tmp_path / "live.pcapng"
    live = Live(veth, tmp_path / "live", "--iface", veth.rx, "--record", str(rec), "--cpu", "1")
    try:
        res = send(veth.tx, CAPTURE, PPS, LOOPS)
        summary = live.stop(signal.SIGINT)
    finally:
        live.kill()
    n = 3996 * LOOPS
    assert res["packets"] == n and res["send_errors"] == 0
    assert res["pps"] == pytest.approx(PPS, rel=0.2)        # paced from one start instant: stalls catch up
    assert summary["drops"] == 0 and summary["kernel"]["drops"] == 0 and summary["kernel"]["freezes"] == 0
    assert summary["packets"] == n and summary["kernel"]["packets"] == n
    assert summary["stop_reason"].startswith("signal")
    assert summary["latency_ns"]["count"] == n and summary["latency_ns"]["p50"] > 0
    ref = replay(sent_cap, tmp_path / "replay", Settings())
    assert summary["by_status"] == ref.by_status
    assert_parity(tmp_path / "live", tmp_path / "replay")
    # the recording holds every frame as it was on the wire (VLAN tags restored) ...
    sent = [f for f, _ in frames_of(sent_cap)]
    got = [f for f, _ in frames_of(rec)]
    assert got == sent
    # ... and replays to the same rows again
    replay(rec, tmp_path / "rec_replay", Settings())
    assert_parity(tmp_path / "rec_replay", tmp_path / "replay")


def test_udp_live_equals_replay_of_the_frames_the_stack_delivers(veth_ip, tmp_path):
    frames = frames_of(CAPTURE)
    ref_cap = write_pcap(tmp_path / "delivered.pcap", delivered_frames(frames))
    live = Live(veth_ip, tmp_path / "live", "--source", "udp", "--ports", str(TXN_PORT), "--record",
                str(tmp_path / "live.pcapng"))
    try:
        res = send(veth_ip.tx, CAPTURE, PPS, 1)
        summary = live.stop(signal.SIGTERM)
    finally:
        live.kill()
    assert res["packets"] == len(frames)
    ref = replay(ref_cap, tmp_path / "replay", Settings())
    assert summary["drops"] == 0
    assert summary["packets"] == ref.packets and summary["by_status"] == ref.by_status
    assert_parity(tmp_path / "live", tmp_path / "replay")
    replay(tmp_path / "live.pcapng", tmp_path / "rec_replay", Settings())     # raw-IP frames, same rows
    assert_parity(tmp_path / "rec_replay", tmp_path / "replay")


def _hostile_frames(seed: int = 5):
    """Garbage, truncated and non-Solana frames, then the demo capture's first 200 frames."""
    rng = np.random.default_rng(seed)
    good = frames_of(CAPTURE)[:200]
    base_ts = good[0][1] - 10_000_000
    eth = bytes.fromhex(VALIDATOR_MAC.replace(":", "")) + bytes.fromhex("020000000001")
    udp_frame = good[0][0]
    bad = []
    for k in range(300):
        kind = k % 6
        if kind == 0:                                    # random bytes with a random EtherType
            f = eth + rng.integers(0, 256, int(rng.integers(2, 1400)), dtype=np.uint8).tobytes()
        elif kind == 1:                                  # IPv4 header cut short
            f = eth + b"\x08\x00" + udp_frame[14:14 + int(rng.integers(1, 20))]
        elif kind == 2:                                  # UDP header cut short
            f = udp_frame[:14 + 20 + int(rng.integers(0, 8))]
        elif kind == 3:                                  # a Solana payload cut short, lengths left as they were
            f = udp_frame[:int(rng.integers(43, len(udp_frame)))]
        elif kind == 4:                                  # DNS-port UDP
            f = bytearray(udp_frame)
            f[36:38] = (53).to_bytes(2, "big")
            f = bytes(f)
        else:                                            # random payload to the transaction port
            f = udp_frame[:42] + rng.integers(0, 256, int(rng.integers(1, 1200)), dtype=np.uint8).tobytes()
        bad.append((f, base_ts + k * 1000))
    return bad + good


def test_bad_input_on_the_wire_is_counted_by_status_and_never_stops_the_engine(veth, tmp_path):
    cap = write_pcap(tmp_path / "hostile.pcap", _hostile_frames())
    live = Live(veth, tmp_path / "live", "--iface", veth.rx)
    try:
        send(veth.tx, cap, 20_000, 1)
        summary = live.stop()
    finally:
        live.kill()
    ref = replay(cap, tmp_path / "replay", Settings())
    assert summary["packets"] == ref.packets == 500
    assert summary["by_status"] == ref.by_status
    for status in ("not_ip", "net_truncated", "not_solana", "truncated"):
        assert summary["by_status"].get(status, 0) > 0, status
    assert summary["by_status"]["transaction"] >= 190             # the good frames after the garbage
    assert_parity(tmp_path / "live", tmp_path / "replay")


def test_capture_filter_keeps_only_the_configured_udp_ports(veth, tmp_path):
    frames = frames_of(CAPTURE)
    want = [f for f, _ in frames if _udp_dport(f) == TXN_PORT]
    live = Live(veth, tmp_path / "live", "--iface", veth.rx, "--ports", str(TXN_PORT))
    try:
        send(veth.tx, CAPTURE, PPS, 1)
        summary = live.stop()
    finally:
        live.kill()
    assert summary["packets"] == len(want) == summary["kernel"]["packets"]
    assert "not_udp" not in summary["by_status"] and "not_solana" not in summary["by_status"]
    assert summary["source_counters"]["filter_ports"] == 1


def _udp_dport(f: bytes) -> int | None:
    """UDP destination port of an (optionally VLAN-tagged) IPv4 frame; None if it has no UDP header."""
    p = 14
    et = struct.unpack("!H", f[12:14])[0]
    if et in (0x8100, 0x88A8):
        et = struct.unpack("!H", f[16:18])[0]
        p = 18
    if et != 0x0800 or len(f) < p + 20 or f[p + 9] != 17:
        return None
    if struct.unpack("!H", f[p + 6:p + 8])[0] & 0x1FFF:
        return None
    ihl = (f[p] & 0x0F) * 4
    if len(f) < p + ihl + 4:
        return None
    return struct.unpack("!H", f[p + ihl + 2:p + ihl + 4])[0]


def test_split_mode_capture_and_engine_in_two_processes_keeps_parity(veth, tmp_path):
    live = Live(veth, tmp_path / "live", "--iface", veth.rx, "--split", "--cpu", "1", "--capture-cpu", "0")
    try:
        send(veth.tx, CAPTURE, PPS, 1)
        summary = live.stop()
    finally:
        live.kill()
    replay(CAPTURE, tmp_path / "replay", Settings())
    assert summary["source"] == "afpacket, split"
    assert summary["drops"] == 0 and summary["kernel"]["frames_into_ring"] == summary["packets"] == 3996
    assert_parity(tmp_path / "live", tmp_path / "replay")


@pytest.mark.parametrize("split", [False, True], ids=["one-process", "split"])
def test_an_interface_that_goes_away_ends_the_run_with_every_frame_it_delivered(veth, tmp_path, split):
    """The veth is deleted mid-run (as a pulled NIC or a deleted namespace): the kernel unhooks the
    socket for good, so the run ends by itself, saying why, with the frames sent before it written."""
    live = Live(veth, tmp_path / "live", "--iface", veth.rx, *(["--split"] if split else []))
    try:
        send(veth.tx, CAPTURE, PPS, 1)
        time.sleep(SETTLE_S)
        _sh("ip", "link", "del", veth.tx)               # takes its peer, the capture's interface, with it
        try:
            out, _ = live.proc.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail("the run went on after its interface went away")
    finally:
        live.kill()
    assert live.proc.returncode == 0, out + "".join(live.err)
    summary = json.loads((tmp_path / "live" / "summary.json").read_text())
    assert summary["stop_reason"] == f"interface {veth.rx} went away (its device was removed)"
    assert summary["packets"] == 3996 and summary["drops"] == 0
    replay(CAPTURE, tmp_path / "replay", Settings())
    assert_parity(tmp_path / "live", tmp_path / "replay")


def test_fanout_group_shares_the_interface_between_two_sockets(veth, tmp_path):
    """Two sockets in one PACKET_FANOUT hash group: every frame reaches exactly one of them."""
    from workbench.capture.afpacket import AfPacketSource
    libc = ctypes.CDLL(None, use_errno=True)
    here = os.open("/proc/self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{veth.ns}", os.O_RDONLY)
    srcs = []
    try:
        assert libc.setns(there, CLONE_NEWNET) == 0          # this thread only, back below
        try:
            for _ in range(2):
                srcs.append(AfPacketSource(veth.rx, block_size=1 << 16, block_nr=128, retire_ms=50, fanout_group=4242,
                                           peek=False))
        finally:
            assert libc.setns(here, CLONE_NEWNET) == 0
        send(veth.tx, CAPTURE, PPS, 1)
        seen = [[], []]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(len(s) for s in seen) < 3996:
            for k, s in enumerate(srcs):
                b = s.poll()
                if b is not None:
                    seen[k] += [bytes(b.frame(i)) for i in range(b.n)]
                    s.release()
            time.sleep(0.002)
        assert all(len(s) > 0 for s in seen), [len(s) for s in seen]
        assert sorted(seen[0] + seen[1]) == sorted(f for f, _ in frames_of(CAPTURE))
        assert sum(s.stats().drops for s in srcs) == 0
    finally:
        for s in srcs:
            s.close()
        os.close(here)
        os.close(there)


def test_live_names_a_missing_interface():
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "live", "--iface", "nosuchif0", "--no-db", "--quiet",
                        "--duration", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "nosuchif0" in r.stderr + r.stdout and "Traceback" not in r.stderr


def test_send_reports_rate_and_pacing_error(veth):
    res = send(veth.tx, CAPTURE, 20_000, 2)
    assert res["packets"] == 2 * 3996 and res["send_errors"] == 0
    # one-sided: a pacer may fall behind on a loaded machine (benchmarks measure how far), but it
    # must never send ahead of its schedule
    assert 0 < res["pps"] <= 20_000 * 1.05
    errs = res["pace_error_ns"]
    assert set(errs) == {"p50", "p99", "p99.9", "max"}
    assert 0 <= errs["p50"] <= errs["p99"] <= errs["p99.9"] <= errs["max"]


MARKET_CAPTURE = CAPTURE.parent / "market.pcapng"
OPP_STABLE = ("type", "packet_index", "tx_index", "pools", "victim_signature", "trigger_signature", "profit_mint",
              "amount_in", "amount_out", "profit_quote", "expected_profit_lamports", "position_id")
SWAP_STABLE = ("packet_index", "tx_index", "pool", "a_to_b", "amount_in", "amount_out", "reserve_a", "reserve_b",
               "status")


def test_live_with_a_market_finds_the_opportunities_replay_finds(veth, tmp_path):
    """The market path runs live too: same swaps, same opportunities (event-time columns aside)."""
    market = str(MARKET_CAPTURE) + ".market"
    live = Live(veth, tmp_path / "live", "--iface", veth.rx, "--market", market)
    try:
        res = send(veth.tx, MARKET_CAPTURE, PPS, 1)
        summary = live.stop(signal.SIGINT)
    finally:
        live.kill()
    assert summary["drops"] == 0 and summary["packets"] == res["packets"]
    ref = replay(MARKET_CAPTURE, tmp_path / "replay", Settings(market=market))
    assert ref.opportunities["count"] > 50
    assert summary["opportunities"]["by_type"] == ref.opportunities["by_type"]
    assert "top opportunities by expected profit" in live.output
    for name, cols in (("opportunities", OPP_STABLE), ("swaps", SWAP_STABLE)):
        a = pq.read_table(tmp_path / "live" / f"{name}.parquet").select(list(cols))
        b = pq.read_table(tmp_path / "replay" / f"{name}.parquet").select(list(cols))
        assert a.equals(b), name


def test_no_parquet_rt_run_counts_everything_and_paces_under_rt_throttling(veth, tmp_path):
    """--no-parquet: no row files, the summary still counts every packet. --rt on a host that
    throttles RT tasks: the loop paces its own short sleeps (and says so) instead of being
    stopped for 50 ms each second."""
    live = Live(veth, tmp_path / "live", "--iface", veth.rx, "--no-parquet", "--rt", "--cpu", "1")
    try:
        res = send(veth.tx, CAPTURE, PPS, 3)
        summary = live.stop(signal.SIGINT)
    finally:
        live.kill()
    assert summary["packets"] == res["packets"] == 3 * 3996 and summary["drops"] == 0
    assert not list((tmp_path / "live").glob("*.parquet"))
    assert sum(summary["by_status"].values()) == summary["packets"]
    notes = " ".join(summary["host"])
    if "SCHED_FIFO priority 50: yes" in notes:
        throttled = "RT throttling leaves" in notes
        assert ("RT pacing: an empty poll sleeps" in notes) == throttled
        assert throttled or "RT pacing off" in notes
