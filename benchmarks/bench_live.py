"""Live capture on a veth pair: our ring path vs the naive peer, side by side, one run.

A network namespace holds one end of a veth pair; ``workbench send`` (root namespace,
CPU 0) replays a synthetic capture into the other end at a fixed rate; a receiver in the
namespace (pinned to CPU 1, SCHED_FIFO when the host grants it) captures and scores:

- ours: ``workbench live --iface ... --cpu 1 --rt`` (TPACKET_V3 ring read in place, the
  whole loop in one nopython call per time slice, rows to Parquet on a sink thread);
- the naive peer: a Python loop of ``socket.recvmsg`` on an AF_PACKET socket
  (SO_TIMESTAMPNS, 32 MiB receive buffer) calling ``process_batch`` once per packet.

Latency is the same figure for both: the kernel's receive timestamp of a packet to the
moment the engine has scored it (``realtime_ns()`` after ``process_batch`` returned for
it), every packet. Drops are the kernel's (PACKET_STATISTICS: ring or socket queue full)
plus any packet sent but never seen. A rate "holds" when nothing is dropped; the
sustained rate is the highest rung of the ladder that holds (capped by what the sender
reaches on this machine, printed beside it).

Run as root: ``python benchmarks/bench_live.py`` (``--quick`` for fewer rungs). ``--tuned``: ours
before and after ``workbench tune apply`` on the veth pair, and the host check's cost at live
start (benchmarks/live_tuned.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import BENCH_DIR, REPO, Veth, bench_capture, table
from workbench.capture.afpacket import ETH_P_ALL, PACKET_STATISTICS, SOL_PACKET
from workbench.capture.kernel import SO_RCVBUFFORCE, SO_TIMESTAMPNS

CAPTURE_PACKETS = 300_000
LATENCY_RATES = (10_000, 50_000, 100_000)
LATENCY_SECONDS = 0.5       # traffic per latency run: under the 0.95 s of RT runtime the kernel allows per
                            # second, so SCHED_FIFO throttling (a 50 ms stall) stays out of the latency figures
LADDER = (25_000, 50_000, 75_000, 100_000, 150_000, 200_000, 300_000, 400_000, 600_000, 800_000)
LADDER_SECONDS = 2.0        # traffic per rung: long enough that a receiver falling behind shows it
BACKLOG_PACKETS = 30_000    # frames queued while a receiver is paused: fits our 32 MiB ring and the peer's buffer
KEPT_UP_P99_NS = 10_000_000  # p99 latency above 10 ms in a 2 s rung: the receiver is not keeping up (a backlog
                             # builds up in its buffer: given longer, it overflows)
READY_TIMEOUT_S = 600
SETTLE_S = 0.5
OURS = ("ours", "ours-np")   # workbench live with its Parquet outputs, and with --no-parquet (engine and summary
                             # only, as the naive peer, which writes nothing)


# --- the naive peer (runs inside the namespace as `bench_live.py --naive-peer`) -----------------
def naive_peer(iface: str, out: str, cpu: int) -> None:
    sys.path.insert(0, str(REPO))
    from workbench.capture.frames import batch_from_frames
    from workbench.config import Settings
    from workbench.engine.pipeline import new_batch_out, process_batch
    from workbench.host import pin_thread, request_fifo
    from workbench.metrics.hist import Histogram
    from workbench.runner import deshred_state, engine_state
    Histogram().record(1)                                          # compile / load before capturing
    settings = Settings()
    state, ds, bout = engine_state(settings), deshred_state(settings), new_batch_out(1)
    warm = batch_from_frames([bytes(60)], ts_ns=[0])
    process_batch(warm, state, ds, bout, 0, None, None)                       # compile / load before capturing
    state, ds = engine_state(settings), deshred_state(settings)
    from workbench.host.memory import prefault
    prefault(state, ds, bout)                                     # as live mode does: no first-touch faults
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((iface, ETH_P_ALL))
    s.settimeout(0.2)
    grants = [str(pin_thread(cpu)), str(request_fifo(50))]
    lat = Histogram()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    print("capturing on", iface, flush=True)
    n = 0
    busy = 0
    while not stop.is_set():
        try:
            data, anc, flags, addr = s.recvmsg(4096, 64)
        except socket.timeout:
            continue
        t_got = time.perf_counter_ns()
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        ts = -1
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", cdata[:16])
                ts = sec * 1_000_000_000 + nsec
        batch = batch_from_frames([data], ts_ns=[ts], first_index=n)
        process_batch(batch, state, ds, bout, 0, None, None)
        lat.record(time.time_ns() - ts)
        busy += time.perf_counter_ns() - t_got
        n += 1
    p, d = struct.unpack("II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    Path(out).write_text(json.dumps({"packets": n, "drops": d, "kernel_packets": p, "host": grants,
                                     "engine_packets_per_s": n / (busy / 1e9) if busy else 0.0,
                                     "latency_ns": {**lat.percentiles((50, 99, 99.9)), "max": lat.max}}))


# --- the harness -------------------------------------------------------------------------------------
def start_receiver(v: Veth, peer: str, out: Path) -> subprocess.Popen:
    if peer in OURS:
        cmd = [sys.executable, "-m", "workbench.cli", "live", "--iface", v.rx, "--cpu", "1", "--rt", "--no-db",
               "--quiet", "--out", str(out), "--duration", "600", *(["--no-parquet"] if peer == "ours-np" else [])]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--naive-peer", "--iface", v.rx, "--out",
               str(out / "naive.json")]
        out.mkdir(parents=True, exist_ok=True)
    p = subprocess.Popen(["ip", "netns", "exec", v.ns, *cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, cwd=REPO)
    ready = threading.Event()
    lines: list[str] = []

    def read():
        for line in p.stdout:
            lines.append(line)
            if "capturing on" in line:
                ready.set()
    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(READY_TIMEOUT_S):
        p.kill()
        raise RuntimeError(f"{peer} receiver did not start:\n{''.join(lines)}")
    p.lines = lines
    return p


def stop_receiver(p: subprocess.Popen, peer: str, out: Path) -> dict:
    time.sleep(SETTLE_S)
    p.send_signal(signal.SIGINT)
    p.wait(300)
    if peer in OURS:
        s = json.loads((out / "summary.json").read_text())
        return {"packets": s["packets"], "drops": s["drops"], "latency_ns": s["latency_ns"], "host": s["host"],
                "engine_packets_per_s": s["engine_packets_per_s"]}
    return json.loads((out / "naive.json").read_text())


def send(v: Veth, capture: Path, pps: int | None, packets: int, capture_packets: int) -> dict:
    loops = max(1, -(-packets // capture_packets))
    cmd = [sys.executable, "-m", "workbench.cli", "send", str(capture), "--iface", v.tx, "--loop", str(loops),
           "--limit", str(packets), "--cpu", "0", "--json"]
    cmd += ["--pps", str(pps)] if pps else ["--topspeed"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    if r.returncode:
        raise RuntimeError(r.stdout + r.stderr)
    return json.loads(r.stdout)


def step(v: Veth, peer: str, capture: Path, cap_n: int, pps: int | None, packets: int, tag: str,
         paused: bool = False) -> dict:
    """One receiver run. ``paused``: the receiver is stopped (SIGSTOP) while the frames are sent,
    so they queue in its ring / socket buffer, then resumed: it drains a backlog in big batches."""
    out = BENCH_DIR / "live" / f"{peer}-{tag}"
    p = start_receiver(v, peer, out)
    try:
        if paused:
            os.kill(p.pid, signal.SIGSTOP)
        sent = send(v, capture, pps, packets, cap_n)
        if paused:
            os.kill(p.pid, signal.SIGCONT)
        got = stop_receiver(p, peer, out)
    finally:
        if p.poll() is None:
            p.kill()
    lost = max(0, sent["packets"] - got["packets"])
    return {"sent": sent["packets"], "sent_pps": sent["pps"], "got": got["packets"],
            "drops": max(got["drops"], lost), "latency_ns": got["latency_ns"], "host": got.get("host", []),
            "engine_packets_per_s": got.get("engine_packets_per_s", 0.0)}


def holds(res: dict, rate: int | None) -> bool:
    """A rung holds: nothing dropped, the sender reached the rate, and the receiver kept up (p99
    latency under KEPT_UP_P99_NS: a receiver that falls behind only hides it in its buffer for a
    while, and its latency grows with the backlog long before a drop shows)."""
    return (res["drops"] == 0 and (rate is None or res["sent_pps"] >= 0.9 * rate)
            and 0 <= res["latency_ns"]["p99"] < KEPT_UP_P99_NS)


def report(peer, rate, res, what="latency"):
    lat = res["latency_ns"]
    print(f"# {what:7} {peer:5} {rate:>8} pps: sent {res['sent']} at {res['sent_pps']:,.0f}/s, got {res['got']}, "
          f"drops {res['drops']}, latency p50/p99/p999 {us(lat['p50'])}/{us(lat['p99'])}/{us(lat['p99.9'])} us",
          flush=True)


def us(v) -> str:
    return "-" if v is None or v < 0 else f"{v / 1000:,.1f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--naive-peer", action="store_true")
    ap.add_argument("--iface")
    ap.add_argument("--out")
    ap.add_argument("--quick", action="store_true", help="latency rates only, no sustained-rate ladder")
    ap.add_argument("--rt-unthrottled", action="store_true",
                    help="as a tuned host: kernel.sched_rt_runtime_us = -1 for the run (restored after), so the "
                         "SCHED_FIFO receivers are never throttled and ours needs no RT pacing")
    ap.add_argument("--tuned", action="store_true",
                    help="ours before and after `workbench tune apply` on the veth pair, then `tune revert`, and the "
                         "cost of the host check at live start (benchmarks/live_tuned.py)")
    ap.add_argument("--check-cost", action="store_true", help=argparse.SUPPRESS)   # --tuned runs it in the namespace
    a = ap.parse_args()
    if a.naive_peer:
        naive_peer(a.iface, a.out, 1)
        return
    if a.check_cost:
        from live_tuned import check_cost
        check_cost(a.iface)
        return
    if os.geteuid() != 0:
        print("bench_live.py: skipped, it needs root (network namespaces, AF_PACKET)")
        return
    rt_path = Path("/proc/sys/kernel/sched_rt_runtime_us")
    rt_before = rt_path.read_text().strip()
    if a.rt_unthrottled:
        rt_path.write_text("-1")
        print(f"# kernel.sched_rt_runtime_us: {rt_before} -> -1 for this run", flush=True)
    try:
        if a.tuned:
            from live_tuned import run_tuned
            run_tuned(a, sys.modules[__name__])
        else:
            run(a)
    finally:
        if a.rt_unthrottled:
            rt_path.write_text(rt_before)


def run(a) -> None:
    capture = bench_capture(CAPTURE_PACKETS)
    from workbench.capture import open_capture
    cap_n = sum(b.n for b in open_capture(capture))
    v = Veth()
    results: dict[str, dict[int, dict]] = {"ours": {}, "ours-np": {}, "naive": {}}
    top: dict[str, dict] = {}
    try:
        # the sender alone, nobody capturing on the far end: the most this machine can offer a receiver
        bare = int(send(v, capture, None, cap_n, cap_n)["pps"])
        print(f"# the sender alone (no receiver): {bare:,} packets/s", flush=True)
        for peer in ("ours", "naive"):
            for rate in LATENCY_RATES:
                res = step(v, peer, capture, cap_n, rate, int(rate * LATENCY_SECONDS), f"lat-{rate}")
                results[peer][rate] = res
                report(peer, rate, res)
        ladder = () if a.quick else LADDER
        for peer in (("ours", "ours-np", "naive") if ladder else ()):
            held = None
            for rate in ladder:
                res = step(v, peer, capture, cap_n, rate, int(rate * LADDER_SECONDS), f"sus-{rate}")
                results[peer][f"sustain-{rate}"] = res
                report(peer, rate, res, "sustain")
                if not holds(res, rate):
                    if res["sent_pps"] < 0.9 * rate:
                        print(f"# the sender reached only {res['sent_pps']:,.0f} packets/s", flush=True)
                    break
                held = int(min(rate, res["sent_pps"]))          # what was actually sent, not the rung's name
            top[peer] = {"held": held}
        # a backlog: how fast each receiver clears frames that are already waiting
        for peer in (() if a.quick else ("ours", "naive")):
            res = step(v, peer, capture, cap_n, None, BACKLOG_PACKETS, "backlog", paused=True)
            results[peer]["backlog"] = res
            print(f"# backlog {peer:5}: {res['got']} of {res['sent']} frames, drops {res['drops']}, drained at "
                  f"{res['engine_packets_per_s']:,.0f} packets/s of busy time", flush=True)
        # the sender's own ceiling, into each of our receivers
        sender_max = {}
        for peer in (OURS if not a.quick else ("ours",)):
            r = step(v, peer, capture, cap_n, None, cap_n, "topspeed")
            results[peer]["topspeed"] = r
            report(peer, "topspeed", r, "sustain")
            sender_max[peer] = int(r["sent_pps"])
            if holds(r, None) and not a.quick:
                top[peer]["topspeed"] = sender_max[peer]
    finally:
        v.close()
    if a.quick:
        top = {p: {"held": max((r for r in LATENCY_RATES if holds(results[p][r], r)), default=None)}
               for p in ("ours", "naive")}
    rows = []
    for rate in LATENCY_RATES:
        o, n = results["ours"].get(rate), results["naive"].get(rate)
        rows.append((f"{rate:,}", o["drops"], us(o["latency_ns"]["p50"]), us(o["latency_ns"]["p99"]),
                     us(o["latency_ns"]["p99.9"]), n["drops"], us(n["latency_ns"]["p50"]),
                     us(n["latency_ns"]["p99"]), us(n["latency_ns"]["p99.9"]),
                     f"{n['latency_ns']['p99'] / max(1, o['latency_ns']['p99']):,.0f}x"))
    table("kernel timestamp -> scored latency (us), every packet, receivers on CPU 1",
          rows, ("packets/s", "ours drops", "ours p50", "ours p99", "ours p99.9", "naive drops", "naive p50",
                 "naive p99", "naive p99.9", "p99 naive/ours"))
    naive_top = top["naive"]["held"] or 0
    rows = []
    for peer, label in (("ours", "ours (TPACKET_V3 ring, nopython loop), Parquet outputs"),
                        ("ours-np", "ours, --no-parquet (engine + summary, as the peer)")):
        if peer not in top:
            continue
        t = max(top[peer].get("topspeed") or 0, top[peer]["held"] or 0)
        capped = bool(top[peer].get("topspeed")) or top[peer]["held"] == LADDER[-1]
        rows.append((label, f"{t:,}" + (" (sender-bound: no drops at the fastest this machine sends into it)"
                                        if capped else ""), f"{t / max(1, naive_top):.1f}x (goal >= 10x)"))
    rows.append(("naive (socket.recvmsg + process_batch per packet)", f"{naive_top:,}", "1x"))
    table("highest rate sustained without drops (sender on CPU 0, receiver on CPU 1)"
          + (" -- --quick: the latency rates only, no search" if a.quick else ""), rows,
          ("receiver", "packets/s", "vs naive"))
    print("the sender's ceiling: " + ", ".join(f"{v:,} packets/s into {k}" for k, v in sender_max.items())
          + f", {bare:,} with nobody capturing (the receiver's threads off CPU 1 and the kernel's receive "
            "path share the sender's CPU)")
    # capacity: packets over the seconds the receiver spent on them (time blocked waiting for
    # packets excluded) while it drained a backlog: what it could take if the sender were faster
    if "backlog" in results["ours"] and "backlog" in results["naive"]:
        bo, bn = results["ours"]["backlog"], results["naive"]["backlog"]
        table(f"backlog drain: {BACKLOG_PACKETS:,} frames queued while the receiver was paused, then resumed "
              "(packets / seconds busy with them)", [
                  ("ours", f"{bo['engine_packets_per_s']:,.0f}", bo["drops"]),
                  ("naive", f"{bn['engine_packets_per_s']:,.0f}", bn["drops"]),
                  ("ratio", f"{bo['engine_packets_per_s'] / max(1.0, bn['engine_packets_per_s']):.1f}x", ""),
              ], ("receiver", "packets/s", "drops"))
    o50 = results["ours"][50_000]["latency_ns"]["p99"]
    print(f"\ngoal p99 < 50 us at 50k packets/s: ours {us(o50)} us -> {'met' if 0 <= o50 < 50_000 else 'NOT met'}")
    print("host: " + "; ".join(results["ours"][50_000]["host"]))
    (BENCH_DIR / "live" / "results.json").write_text(json.dumps({"results": {p: {str(k): v for k, v in r.items()}
                                                                             for p, r in results.items()},
                                                                 "top": top, "sender_max_pps": sender_max,
                                                                 "sender_bare_pps": bare}, indent=1))


if __name__ == "__main__":
    main()
