"""A store server that is slow or broken is given the config's deadlines, then treated as
unreachable: rows go to the spool, outputs are written, one warning line says what happened.

Every server here is real and on loopback (tests/fault_servers.py): one that accepts and never
answers, one answering HTTP 500, one sending garbage, one closing mid-answer. Deadlines are
1 s, so each test is bounded by a few seconds (and pytest-timeout backs that up)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import CAPTURES
from fault_servers import FAULTS, fault_server
from store_helpers import make_tx_features
from workbench.config import Settings, load_settings
from workbench.engine.tables import read_tx_features
from workbench.errors import ConfigError, StoreError, StoreUnavailable
from workbench.store import StoreWriter, connect, default_spool_dir, parse_dsn
from workbench.store.spool import Spool, read_spool_file

pytestmark = pytest.mark.timeout(120)

DEADLINE_S = 1
WHY = {     # what the one-line message says for each fault
    "silent": "no answer within the read deadline of 1 s (store_read_timeout_s)",
    "http500": "answered HTTP 500 without a ClickHouse error",
    "garbage": "its answer is not ClickHouse's",
    "closes_mid_response": "closed the connection in the middle of its answer",
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_connect_to_a_broken_server_is_unavailable_within_the_deadlines(kind):
    with fault_server(kind) as srv:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable) as e:
            connect(f"http://default:secret@127.0.0.1:{srv.port}/mev", connect_timeout=DEADLINE_S,
                    read_timeout=DEADLINE_S)
        took = time.monotonic() - t0
    msg = str(e.value)
    assert WHY[kind] in msg and "flush-spool" in msg and "secret" not in msg and "\n" not in msg
    assert took < 4 * DEADLINE_S + 2, f"{kind}: {took:.1f} s"


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_writer_spools_every_row_for_a_broken_server_and_closes_in_bounded_time(kind, tmp_path, caplog):
    batch = make_tx_features(500, seed=3)
    with fault_server(kind) as srv:
        dsn = f"http://default:secret@127.0.0.1:{srv.port}/mev"
        t0 = time.monotonic()
        w = StoreWriter(dsn, tmp_path / "spool", run_id="r-deadline", connect_timeout_s=DEADLINE_S,
                        read_timeout_s=DEADLINE_S, retry_interval_s=60).start()
        w.put("tx_features", batch)
        w.put("tx_features", make_tx_features(300, seed=4, start=500))
        stats = w.close(timeout=30)
        took = time.monotonic() - t0
    assert stats.rows_inserted == 0 and stats.rows_spooled == 800
    assert took < 3 * DEADLINE_S + 3, f"{kind}: the writer took {took:.1f} s"    # one deadline, not one per batch
    files = Spool(tmp_path / "spool").pending()
    assert sum(read_spool_file(p).data.num_rows for p in files) == 800
    assert {read_spool_file(p).target for p in files} == {parse_dsn(dsn).target}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(WHY[kind] in m and "spooling to" in m for m in warnings), warnings


def test_deadline_settings_are_validated_and_named(tmp_path):
    s = load_settings(environ={})
    assert (s.store_connect_timeout_s, s.store_read_timeout_s) == (Settings.store_connect_timeout_s,
                                                                   Settings.store_read_timeout_s)
    cfg = tmp_path / "c.toml"
    for text, words in (("store_read_timeout_s = 0", "store_read_timeout_s"),
                        ("store_read_timeout_s = 1e9", "[1, 3600]"),
                        ("store_connect_timeout_s = inf", "store_connect_timeout_s"),
                        ("store_connect_timeout_s = 'soon'", "an integer in [1, 600]"),
                        ("store_read_timeout_s = 2.5", "store_read_timeout_s")):
        cfg.write_text(text + "\n")
        with pytest.raises(ConfigError, match="key " + text.split()[0]) as e:
            load_settings(cfg, environ={})
        assert words in str(e.value)
    with pytest.raises(ConfigError, match="WORKBENCH_STORE_READ_TIMEOUT_S"):
        load_settings(environ={"WORKBENCH_STORE_READ_TIMEOUT_S": "-1"})
    assert load_settings(environ={"WORKBENCH_STORE_READ_TIMEOUT_S": "5"}).store_read_timeout_s == 5


@pytest.mark.parametrize("option", ["connect_timeout=0", "send_receive_timeout=99999", "send_receive_timeout=x",
                                    "query_retries=-1"])
def test_dsn_deadline_options_are_checked(option):
    with pytest.raises(StoreError, match=option.split("=")[0]):
        parse_dsn(f"http://127.0.0.1:8123/db?{option}")
    assert parse_dsn("http://127.0.0.1:8123/db?send_receive_timeout=7").options == {"send_receive_timeout": 7}


@pytest.mark.parametrize("kind", ["silent", "http500"])
def test_replay_against_a_broken_store_writes_its_outputs_and_spools_its_rows(kind, tmp_path):
    """The CLI, as a user runs it: exit 0, Parquet written, the same rows in the spool, one warning line."""
    cfg = tmp_path / "workbench.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\nprogress = false\n'
                   f"store_connect_timeout_s = {DEADLINE_S}\nstore_read_timeout_s = {DEADLINE_S}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    with fault_server(kind) as srv:
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "workbench.cli", "replay", str(CAPTURES / "small.pcap"),
                            "--out", str(tmp_path / "out"), "--config", str(cfg),
                            "--db", f"http://127.0.0.1:{srv.port}/mev"],
                           capture_output=True, text=True, timeout=110, env=env)
        took = time.monotonic() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    assert "rows spooled" in p.stdout
    warning = [line for line in p.stderr.splitlines() if WHY[kind] in line]
    assert len(warning) == 1 and "Traceback" not in p.stderr, p.stderr
    tx = read_tx_features(tmp_path / "out/tx_features.parquet")
    status = pq.read_table(tmp_path / "out/packet_status.parquet")
    assert tx.num_rows > 0 and status.num_rows > 0
    spooled = [read_spool_file(f) for f in Spool(default_spool_dir(tmp_path / "data")).pending()]
    spooled_tx = pa.concat_tables([f.data for f in spooled if f.table == "tx_features"])
    assert spooled_tx.num_rows == tx.num_rows
    assert sorted(spooled_tx.column("signature").to_pylist()) == sorted(tx.column("signature").to_pylist())
    assert took < 100, f"{kind}: the replay took {took:.0f} s"


def test_probing_a_silent_server_holds_the_writer_a_fraction_of_the_time(tmp_path):
    """While the server stays silent the writer probes it again only after PROBE_COST_FACTOR
    times what the last probe cost: rows keep flowing to the spool instead of waiting on
    one read deadline after another."""
    from workbench.store.writer import PROBE_COST_FACTOR
    run_s, retry_s = 6.0, 0.2
    with fault_server("silent") as srv:
        w = StoreWriter(f"http://127.0.0.1:{srv.port}/mev", tmp_path / "spool", run_id="r-probe", linger_s=0.05,
                        connect_timeout_s=DEADLINE_S, read_timeout_s=DEADLINE_S, retry_interval_s=retry_s).start()
        t0, n = time.monotonic(), 0
        while time.monotonic() - t0 < run_s:
            w.put("tx_features", make_tx_features(50, seed=n, start=n * 50))
            n += 1
            time.sleep(0.02)
        stats = w.close(timeout=30)
        probes = srv.accepted
    assert stats.rows_spooled == 50 * n and stats.rows_inserted == 0
    # without the factor: one probe per (retry_s + DEADLINE_S), about 5 in 6 s; with it, one per 5 s at most
    assert probes <= 1 + run_s / (PROBE_COST_FACTOR * DEADLINE_S) + 1, probes
    assert stats.put_wait_s < run_s / 2, stats.put_wait_s


@pytest.mark.parametrize("command", [["db", "runs"], ["db", "query", "SELECT 1"], ["db", "schema", "--apply"]])
def test_db_commands_give_a_silent_server_the_configured_deadlines(command, tmp_path):
    """Every db command, not only the writer, names a silent server unreachable within the config's
    deadlines: exit 2, a message, no traceback, instead of the driver's five-minute wait."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env |= {"WORKBENCH_STORE_CONNECT_TIMEOUT_S": str(DEADLINE_S), "WORKBENCH_STORE_READ_TIMEOUT_S": str(DEADLINE_S),
            "WORKBENCH_DATA_DIR": str(tmp_path / "data")}
    with fault_server("silent") as srv:
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "workbench.cli", *command, "--db", f"http://127.0.0.1:{srv.port}/mev"],
                           capture_output=True, text=True, timeout=110, env=env)
        took = time.monotonic() - t0
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "read deadline" in p.stdout + p.stderr, p.stdout + p.stderr
    assert took < 60, f"{command}: took {took:.0f} s"
