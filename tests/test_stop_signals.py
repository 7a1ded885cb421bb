"""What a stop guarantees, on real processes: `python -m workbench.cli replay` on a bundled
capture, paced (--speed) so that it is mid-run, is sent SIGINT, SIGTERM or SIGKILL. Every row
it processed must then be in Parquet files that read, AND in the store or its spool, and the
run's status must say how it ended. The rows are counted in all three places.

A store that cannot take rows and a spool that cannot either are the other stop: the spool
folder is checked before the first row, and a consumer that fails mid-run (the spool folder
taken away under a run whose store is down) never leaves the Parquet files disagreeing.
Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import CAPTURES, REPO
from store_helpers import closed_port

DEMO = CAPTURES / "demo.pcapng"                  # 3,996 packets over 2 s of capture time
MARKET = CAPTURES / "market.pcapng"              # swaps and opportunities, with its snapshot beside it
SPEED = 0.2                                      # demo.pcapng then takes 10 s: a signal lands mid-run
START_TIMEOUT_S = 300                            # interpreter, chDB and a (cached) engine warm-up
STOP_TIMEOUT_S = 120                             # signal -> exit, everything written
IN_RUN_S = 1.5                                   # after the first rows are written, before the signal


def _env(tmp: Path) -> dict:
    env = dict(os.environ, WORKBENCH_DATA_DIR=str(tmp / "data"), PYTHONPATH=str(REPO))
    env.pop("WORKBENCH_DB", None)
    env.pop("WORKBENCH_CONFIG", None)
    return env


def _start(tmp: Path, dsn: str, capture: Path = DEMO, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "workbench.cli", "replay", str(capture), "-o", str(tmp / "out"),
           "--speed", str(SPEED), "-q", "--db", dsn, *extra]
    return subprocess.Popen(cmd, cwd=tmp, env=_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _mid_run(proc: subprocess.Popen, out: Path) -> None:
    """Wait until the replay has written rows (its Parquet file is being written), then a little more."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (out / "tx_features.parquet.partial").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            o, e = proc.communicate(timeout=30)
            pytest.fail(f"the replay did not start writing: rc={proc.returncode}\n{o}\n{e}")
        time.sleep(0.05)
    time.sleep(IN_RUN_S)
    assert proc.poll() is None, "the replay ended before the signal: slow its --speed"


def _stop(proc: subprocess.Popen, sig: int) -> tuple[int, str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the replay did not stop within {STOP_TIMEOUT_S} s of {signal.Signals(sig).name}")
    return proc.returncode, out, err


def _parquet(out: Path, name: str) -> pa.Table:
    return pq.read_table(out / f"{name}.parquet")       # raises on a file left unfinished


def _spooled(tmp: Path, table: str, run_id: str) -> list[pa.Table]:
    from workbench.store.spool import read_spool_file
    found = []
    for p in sorted((tmp / "data" / "spool").glob("*.arrow")):
        f = read_spool_file(p)
        if f.table == table:
            found.append(f.data.filter(pc.equal(f.data.column("run_id"), run_id)))
    return found


def _spooled_rows(tmp: Path, table: str, run_id: str) -> int:
    return sum(t.num_rows for t in _spooled(tmp, table, run_id))


def _spooled_status(tmp: Path, run_id: str) -> str:
    runs = _spooled(tmp, "runs", run_id)
    rows = pa.concat_tables(runs).to_pylist() if runs else []
    return max(rows, key=lambda r: r["updated_at"])["status"] if rows else ""


def _check_outputs_agree(out: Path) -> tuple[pa.Table, pa.Table]:
    """Both row files read, and every transaction row's packet has a status row saying so."""
    tx, st = _parquet(out, "tx_features"), _parquet(out, "packet_status")
    assert not list(out.glob("*.partial")), "a row file was left unfinished"
    tx_packets = set(tx.column("packet_index").to_pylist())
    status = dict(zip(st.column("packet_index").to_pylist(), st.column("status").to_pylist()))
    assert tx_packets <= set(status), "transaction rows whose packet has no status row"
    assert sum(1 for s in status.values() if s == "transaction") == tx.num_rows
    assert st.num_rows == max(status) + 1, "packet_status rows are not every packet up to the last"
    return tx, st


@pytest.mark.parametrize("sig, status, code", [(signal.SIGINT, "interrupted", 130),
                                                (signal.SIGTERM, "terminated", 143),
                                                (signal.SIGHUP, "terminated", 129)])
def test_signal_mid_replay_keeps_every_row_in_parquet_and_store(tmp_path, sig, status, code):
    from workbench.store import connect
    dsn = f"chdb://{tmp_path / 'db'}"
    proc = _start(tmp_path, dsn)
    _mid_run(proc, tmp_path / "out")
    rc, out, err = _stop(proc, sig)
    assert rc == code, f"rc={rc}\n{out}\n{err}"
    assert "Traceback" not in err and "not running" not in err, err
    assert f"stopped by {signal.Signals(sig).name}" in err and f"'{status}'" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == status and summary["stop_signal"] == signal.Signals(sig).name
    tx, st = _check_outputs_agree(tmp_path / "out")
    assert 0 < st.num_rows == summary["packets"] < 3996          # stopped mid-run, every packet counted
    assert tx.num_rows == summary["transactions"]
    run = summary["run_id"]
    with connect(dsn) as s:
        stored = s.count("tx_features", "run_id = {r:String}", {"r": run})
        runs = s.query_rows("SELECT status, counts['packets'] FROM runs FINAL WHERE run_id = {r:String}", {"r": run})
    assert stored + _spooled_rows(tmp_path, "tx_features", run) == tx.num_rows
    assert stored == tx.num_rows                                  # the store answered: nothing needed the spool
    assert runs == [(status, st.num_rows)]


def test_sigint_with_unreachable_store_spools_every_row(tmp_path):
    dsn = f"http://default:pw@127.0.0.1:{closed_port()}/mev"
    proc = _start(tmp_path, dsn)
    _mid_run(proc, tmp_path / "out")
    rc, out, err = _stop(proc, signal.SIGINT)
    assert rc == 130, f"rc={rc}\n{out}\n{err}"
    assert "Traceback" not in err, err
    tx, st = _check_outputs_agree(tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    run = summary["run_id"]
    assert 0 < tx.num_rows == summary["transactions"]
    assert _spooled_rows(tmp_path, "tx_features", run) == tx.num_rows
    assert _spooled_status(tmp_path, run) == "interrupted"
    assert summary["store"]["rows_spooled"] >= tx.num_rows and summary["store"]["rows_inserted"] == 0


def test_sigterm_mid_market_replay_keeps_opportunities_too(tmp_path):
    """The same with a market: swaps and opportunities in Parquet, opportunities in the store."""
    from workbench.store import connect
    dsn = f"chdb://{tmp_path / 'db'}"
    proc = _start(tmp_path, dsn, MARKET, "--market", str(MARKET) + ".market")
    _mid_run(proc, tmp_path / "out")
    rc, out, err = _stop(proc, signal.SIGTERM)
    assert rc == 143, f"rc={rc}\n{out}\n{err}"
    tx, _ = _check_outputs_agree(tmp_path / "out")
    opps, swaps = _parquet(tmp_path / "out", "opportunities"), _parquet(tmp_path / "out", "swaps")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    run = summary["run_id"]
    assert summary["status"] == "terminated" and opps.num_rows == summary["opportunities"]["count"]
    assert swaps.num_rows > 0
    with connect(dsn) as s:
        assert s.count("tx_features", "run_id = {r:String}", {"r": run}) == tx.num_rows
        assert s.count("mev_opportunities", "toString(run_id) = {r:String}", {"r": run}) == opps.num_rows


def test_sigkill_leaves_a_run_the_store_marks_killed(tmp_path):
    """SIGKILL cannot be caught: the run's row stays 'running' with no heartbeat; the next look
    (the next writer, `workbench db runs`) marks it 'killed', ended at its last heartbeat."""
    from workbench.store import connect
    from workbench.store.writer import mark_lost_runs
    dsn = f"chdb://{tmp_path / 'db'}"
    proc = _start(tmp_path, dsn)
    _mid_run(proc, tmp_path / "out")
    proc.kill()
    proc.communicate(timeout=STOP_TIMEOUT_S)
    # a Parquet file is readable once closed: a killed run leaves only .partial files, never a
    # *.parquet that does not read
    assert not list((tmp_path / "out").glob("*.parquet")) and (tmp_path / "out/tx_features.parquet.partial").exists()
    time.sleep(1.0)
    with connect(dsn) as s:
        (run, status, started), = s.query_rows("SELECT run_id, status, started_at FROM runs FINAL")
        assert status == "running"
        assert mark_lost_runs(s, lost_after_s=600) == []          # a recent heartbeat: not yet
        assert mark_lost_runs(s, lost_after_s=0.5) == [run]
        (status, ended), = s.query_rows("SELECT status, ended_at FROM runs FINAL WHERE run_id = {r:String}",
                                        {"r": run})
    assert status == "killed" and ended >= started


def test_heartbeat_keeps_a_live_run_from_being_marked(tmp_path):
    from workbench.store.writer import StoreWriter, mark_lost_runs
    w = StoreWriter(f"chdb://{tmp_path / 'db'}", tmp_path / "spool", heartbeat_s=0.2).start()
    try:
        run = w.record_run_start(source="live")
        time.sleep(1.5)
        assert mark_lost_runs(w._store, lost_after_s=0.8) == []    # beats every 0.2 s: alive
        w.record_run_end({"packets": 0}, status="done")
    finally:
        w.close()
    from workbench.store import connect
    with connect(f"chdb://{tmp_path / 'db'}") as s:
        assert s.query_rows("SELECT status FROM runs FINAL WHERE run_id = {r:String}", {"r": run}) == [("done",)]


def test_db_runs_marks_a_run_without_heartbeat_killed(tmp_path):
    """A 'running' row last rewritten an hour ago: `workbench db runs` says 'killed'."""
    from workbench.store import connect
    from workbench.store.writer import StoreWriter
    dsn = f"chdb://{tmp_path / 'db'}"
    w = StoreWriter(dsn, tmp_path / "spool", heartbeat_s=3600).start()
    run = w.record_run_start(source="replay", started_ns=time.time_ns() - 3600 * 10**9)
    w.close()                                                      # no end row: as a killed process leaves it
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "db", "runs", "--db", dsn], cwd=tmp_path,
                       env={**_env(tmp_path), "COLUMNS": "250"}, capture_output=True, text=True, timeout=STOP_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    assert "killed" in r.stdout and "running" not in r.stdout, r.stdout
    with connect(dsn) as s:
        assert s.query_rows("SELECT status FROM runs FINAL WHERE run_id = {r:String}", {"r": run}) == [("killed",)]


def test_unwritable_spool_folder_is_refused_before_any_row(tmp_path):
    """Store down and nowhere to spool: a message naming the spool folder, no traceback, no rows."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "spool").write_text("in the way")
    dsn = f"http://default:pw@127.0.0.1:{closed_port()}/mev"
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "replay", str(DEMO), "-o", str(tmp_path / "out"),
                        "-q", "--db", dsn], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
                       timeout=START_TIMEOUT_S)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "ArrowInvalid" not in r.stderr
    assert f"spool folder {tmp_path / 'data' / 'spool'}" in r.stderr.replace("\n", "")
    assert not (tmp_path / "out" / "tx_features.parquet").exists()


def test_spool_lost_mid_run_fails_the_run_with_parquet_files_that_agree(tmp_path):
    """The store is down and the spool folder is taken away mid-run (a file put in its place):
    the run fails with a message, not a traceback, and the Parquet files hold every processed
    row and agree with each other."""
    dsn = f"http://default:pw@127.0.0.1:{closed_port()}/mev"
    proc = _start(tmp_path, dsn)
    _mid_run(proc, tmp_path / "out")
    spool = tmp_path / "data" / "spool"
    # moved away in one step (a rename), not emptied file by file: the writer keeps adding files to it;
    # the file is made only where nothing is (O_EXCL), as the writer makes the folder again for its next
    # file and may do so between the two steps (then that folder is taken away too)
    for k in range(50):
        spool.rename(tmp_path / "data" / f"spool-taken-{k}")
        try:
            fd = os.open(spool, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            continue
        os.write(fd, b"in the way")
        os.close(fd)
        break
    else:
        pytest.fail("the writer made its spool folder again before every one of 50 tries to put a file there")
    try:
        out, err = proc.communicate(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the replay did not end after its spool went away")
    assert proc.returncode == 2, f"rc={proc.returncode}\n{out}\n{err}"
    assert "Traceback" not in err and "error:" in err and "store writer failed" in err, err
    tx, st = _check_outputs_agree(tmp_path / "out")
    assert 0 < st.num_rows < 3996


# --- live mode: the same guarantees, and its warm-up before capture -------------------------------
def _udp_payloads(capture: Path, port: int = 8003) -> list[bytes]:
    """The UDP payloads of the capture's untagged IPv4 frames to ``port``."""
    from workbench.capture import open_capture
    out = []
    for b in open_capture(capture):
        for i in range(b.n):
            f = bytes(b.frame(i))
            if len(f) < 42 or f[12:14] != b"\x08\x00" or f[23] != 17:
                continue
            ihl = (f[14] & 0x0F) * 4
            udp = f[14 + ihl:]
            if int.from_bytes(udp[2:4], "big") == port:
                out.append(udp[8:int.from_bytes(udp[4:6], "big")])
    return out


def _free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _bound_udp_ports() -> set[int]:
    ports = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        ports.add(int(line.split()[1].split(":")[1], 16))
    return ports


class _Sender(threading.Thread):
    """Sends the payloads to 127.0.0.1:``port`` round and round, about ``pps`` a second, until stopped."""

    def __init__(self, port: int, payloads: list[bytes], pps: float = 2000.0):
        super().__init__(daemon=True)
        self.port, self.payloads, self.gap = port, payloads, 1.0 / pps
        self.halt = threading.Event()
        self.sent = 0

    def run(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        while not self.halt.is_set():
            for p in self.payloads[:100]:
                s.sendto(p, ("127.0.0.1", self.port))
                self.sent += 1
            self.halt.wait(100 * self.gap)
        s.close()


def test_sigterm_mid_live_keeps_every_row_in_parquet_and_store(tmp_path):
    from workbench.store import connect
    port = _free_udp_port()
    dsn = f"chdb://{tmp_path / 'db'}"
    cmd = [sys.executable, "-m", "workbench.cli", "live", "--source", "udp", "--ports", str(port),
           "--transaction-ports", str(port), "--out", str(tmp_path / "out"), "--db", dsn, "--quiet",
           "--duration", "300"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    sender = _Sender(port, _udp_payloads(DEMO))
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while port not in _bound_udp_ports():
            assert proc.poll() is None and time.monotonic() < deadline, "workbench live did not start"
            time.sleep(0.05)
        sender.start()
        time.sleep(2.0)
        rc, out, err = _stop(proc, signal.SIGTERM)
    finally:
        sender.halt.set()
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, f"rc={rc}\n{out}\n{err}"               # a signal is how a live capture ends
    assert "Traceback" not in err and "status terminated" in out, out + err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "terminated" and summary["stop_reason"] == "signal SIGTERM"
    tx, st = _check_outputs_agree(tmp_path / "out")
    assert 0 < tx.num_rows == summary["transactions"] and st.num_rows == summary["packets"]
    with connect(dsn) as s:
        stored = s.count("tx_features", "run_id = {r:String}", {"r": summary["run_id"]})
        runs = s.query_rows("SELECT status FROM runs FINAL WHERE run_id = {r:String}", {"r": summary["run_id"]})
    assert stored == tx.num_rows and runs == [("terminated",)]


def test_live_udp_binds_its_ports_after_warm_up_and_counts_duration_from_capture_start(tmp_path, monkeypatch):
    """Issue 17: no packet waits in a socket while the loop warms up (its wait would land in the
    kernel-to-scored histogram): the ports are bound after the warm-up, --duration counts from there."""
    from workbench.config import Settings
    from workbench.runner.live import LiveLoop, live
    port = _free_udp_port()
    seen = {}
    real_warm_up = LiveLoop.warm_up

    def watched_warm_up(self, stop=None):
        seen["bound during warm-up"] = port in _bound_udp_ports()
        t = real_warm_up(self, stop)
        seen["bound after warm-up"] = port in _bound_udp_ports()
        return t

    monkeypatch.setattr(LiveLoop, "warm_up", watched_warm_up)
    ready = []
    sender = _Sender(port, _udp_payloads(DEMO), pps=1000)
    sender.start()                                     # sending before, during and after the warm-up
    try:
        res = live(None, tmp_path / "out", Settings(data_dir=str(tmp_path), transaction_ports=(port,)),
                   source="udp", ports=[port], duration=1.0, on_ready=lambda m: ready.append(port in _bound_udp_ports()))
    finally:
        sender.halt.set()
    assert seen == {"bound during warm-up": False, "bound after warm-up": False} and ready == [True]
    assert res.warmup_before_capture and res.status == "done" and res.stop_reason == "duration"
    assert 1.0 <= res.wall_s < 1.0 + 0.5                 # the duration is capture time, warm-up apart
    assert res.transactions > 0
    assert res.latency_ns["max"] < 200_000_000           # no packet waited for a warm-up


# --- a consumer that fails: the others still get every row ------------------------------------------
class _BrokenSink:
    """A caller's sink that takes some tables, then fails (a full disk, a bug): a real consumer."""

    def __init__(self, fail_after: int):
        self.left = fail_after

    def __call__(self, name, table):
        if self.left == 0:
            raise OSError(28, "No space left on device")
        self.left -= 1


def test_a_failing_consumer_fails_the_run_with_every_row_in_parquet_and_store(tmp_path):
    """The run stops with the error ('failed'), and what it processed until then is in Parquet
    files that agree AND in the store: one consumer's failure starves no other."""
    from workbench.config import Settings
    from workbench.runner import replay
    from workbench.store import connect
    dsn = f"chdb://{tmp_path / 'db'}"
    # (it fails at its second table; the sink thread holds the rows of queued calls back and joins them,
    # so that may come only once the engine has handed on the whole capture: packets <= 3996)
    with pytest.raises(OSError, match="No space left") as err:
        replay(DEMO, tmp_path / "out", Settings(data_dir=str(tmp_path), batch_frames=256), sink=_BrokenSink(1),
               db=dsn)
    assert any("Parquet files under" in n for n in getattr(err.value, "__notes__", []))
    tx, st = _check_outputs_agree(tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left" in summary["error"]
    assert 0 < st.num_rows == summary["packets"] <= 3996 and tx.num_rows == summary["transactions"]
    with connect(dsn) as s:
        stored = s.count("tx_features", "run_id = {r:String}", {"r": summary["run_id"]})
        runs = s.query_rows("SELECT status, counts['packets'] FROM runs FINAL WHERE run_id = {r:String}",
                            {"r": summary["run_id"]})
    assert stored == tx.num_rows and runs == [("failed", st.num_rows)]


def test_a_failing_consumer_fails_a_live_run_with_every_staged_row_written_once(tmp_path):
    """Live mode, the same class: the engine thread is stopped as at a normal end, the rows it had
    staged are handed on once (no packet twice), Parquet agrees with itself and the store."""
    from workbench.config import Settings
    from workbench.runner.live import live
    from workbench.store import connect
    port = _free_udp_port()
    dsn = f"chdb://{tmp_path / 'db'}"
    sender = _Sender(port, _udp_payloads(DEMO))
    sender.start()
    try:
        with pytest.raises(OSError, match="No space left"):
            live(None, tmp_path / "out", Settings(data_dir=str(tmp_path), transaction_ports=(port,), live_slice_ms=20),
                 source="udp", ports=[port], duration=30, db=dsn, sink=_BrokenSink(6))
    finally:
        sender.halt.set()
    tx, st = _check_outputs_agree(tmp_path / "out")
    assert len(set(st.column("packet_index").to_pylist())) == st.num_rows > 0      # no packet handed on twice
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["packets"] == st.num_rows
    with connect(dsn) as s:
        assert s.count("tx_features", "run_id = {r:String}", {"r": summary["run_id"]}) == tx.num_rows
        assert s.query_rows("SELECT status FROM runs FINAL WHERE run_id = {r:String}",
                            {"r": summary["run_id"]}) == [("failed",)]


def _children(pid: int) -> dict[int, str]:
    """pid: command line of each child process of ``pid``."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigint_during_a_cold_warm_up_stops_at_once_with_an_empty_run(tmp_path):
    """On a cold numba cache the warm-up compiles for a minute or more: Ctrl-C then answers at
    once (no row exists yet), the compile helper is ended, and the run ends 'interrupted' with
    empty, readable row files."""
    from workbench.store import connect
    dsn = f"chdb://{tmp_path / 'db'}"
    cmd = [sys.executable, "-m", "workbench.cli", "replay", str(DEMO), "-o", str(tmp_path / "out"), "-q", "--db", dsn]
    env = {**_env(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "cold-cache")}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (helpers := [p for p, c in _children(proc.pid).items() if "precompile_child" in c]):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=30)
            time.sleep(0.05)                                   # (the warm-up compiles with a helper process)
        time.sleep(1.0)
        t = time.monotonic()
        rc, out, err = _stop(proc, signal.SIGINT)
        took = time.monotonic() - t
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130 and took < 30, f"rc={rc} after {took:.1f} s\n{out}\n{err}"
    assert "Traceback" not in err, err
    gone = time.monotonic() + 10
    while any(_alive(p) for p in helpers) and time.monotonic() < gone:
        time.sleep(0.1)
    assert not any(_alive(p) for p in helpers), "the compile helper outlived the run"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["packets"] == 0
    assert _parquet(tmp_path / "out", "tx_features").num_rows == 0 == _parquet(tmp_path / "out", "packet_status").num_rows
    with connect(dsn) as s:
        assert s.query_rows("SELECT status FROM runs FINAL") == [("interrupted",)]


def test_sigint_during_a_cold_live_warm_up_ends_before_capture(tmp_path):
    """Live mode, the same: a signal during the loop's warm-up ends the run before its ports are
    bound, at once, as 'interrupted' with empty, readable row files."""
    port = _free_udp_port()
    cmd = [sys.executable, "-m", "workbench.cli", "live", "--source", "udp", "--ports", str(port),
           "--out", str(tmp_path / "out"), "--no-db", "--quiet", "--duration", "300"]
    env = {**_env(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "cold-cache")}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (tmp_path / "out").is_dir():            # made right before the warm-up starts compiling
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=30)
            time.sleep(0.05)
        time.sleep(1.5)
        assert port not in _bound_udp_ports()
        t = time.monotonic()
        rc, out, err = _stop(proc, signal.SIGINT)
        took = time.monotonic() - t
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0 and took < 30, f"rc={rc} after {took:.1f} s\n{out}\n{err}"
    assert "Traceback" not in err and "capturing" not in err, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["packets"] == 0 and summary["stop_reason"] == "signal SIGINT"
    assert _parquet(tmp_path / "out", "tx_features").num_rows == 0
