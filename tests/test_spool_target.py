"""Rows spooled for one store go into that store only: each spool file records its target
(the DSN without its password, and the database), and ``flush-spool`` inserts into another
store only when ``--to DSN`` asks; otherwise it refuses, naming both stores."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from store_helpers import closed_port, make_tx_features
from workbench.store import StoreWriter, conform, connect, parse_dsn
from workbench.store.spool import Spool, read_spool_file

pytestmark = pytest.mark.timeout(120)
ELSEWHERE = "http://alice:hunter2@db.example:8123/mev"


def _tx(n, seed, start=0):
    return conform("tx_features", make_tx_features(n, seed=seed, start=start), "r-target")


def _flush_cli(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    return subprocess.run([sys.executable, "-m", "workbench.cli", "db", "flush-spool", *args],
                          capture_output=True, text=True, timeout=100, env=env)


def test_dsn_target_names_the_store_without_its_password():
    assert parse_dsn(ELSEWHERE).target == "http://alice@db.example:8123/mev"
    assert parse_dsn("http://alice:other@DB.example:8123/mev?send_receive_timeout=5").target == \
        parse_dsn(ELSEWHERE).target                       # the same store, whatever the password or options
    assert parse_dsn("http://alice:hunter2@db.example:8123/other").target != parse_dsn(ELSEWHERE).target
    assert parse_dsn("chdb:///var/wb/ch?database=mev").target == "chdb:///var/wb/ch?database=mev"
    assert parse_dsn("chdb:///var/wb/ch/").target == "chdb:///var/wb/ch"


def test_the_writer_records_its_store_in_each_spool_file(tmp_path):
    down = f"http://bob:s3cret@127.0.0.1:{closed_port()}/mev"
    with StoreWriter(down, tmp_path / "spool", run_id="r-down", connect_timeout_s=1, read_timeout_s=1) as w:
        w.put("tx_features", make_tx_features(20, seed=1))
    files = Spool(tmp_path / "spool").pending()
    assert files and all(read_spool_file(p).target == parse_dsn(down).target for p in files)
    assert all(b"s3cret" not in p.read_bytes() for p in files)


def test_flush_leaves_rows_of_another_store_unless_asked(dsn, tmp_path):
    spool = Spool(tmp_path / "spool", target=dsn)
    spool.write("tx_features", _tx(30, 2), "tok-here")
    Spool(spool.dir, target=ELSEWHERE).write("tx_features", _tx(40, 3, start=100), "tok-there")
    with connect(dsn) as store:
        stats = spool.flush(store)
        assert (stats.files, stats.rows_inserted, stats.files_left) == (1, 30, 1)
        assert stats.other_target == {parse_dsn(ELSEWHERE).target: 1}
        assert store.count("tx_features") == 30
        stats = spool.flush(store, retarget=True)
        assert (stats.files, stats.rows_inserted, stats.files_left) == (1, 40, 0)
        assert store.count("tx_features") == 70


def test_cli_refuses_rows_of_another_store_naming_both_then_inserts_them_with_to(tmp_path):
    here = f"chdb://{tmp_path / 'clickhouse'}"
    spool = Spool(tmp_path / "spool", target=ELSEWHERE)
    spool.write("tx_features", _tx(40, 4), "tok-a")
    spool.write("tx_features", _tx(10, 5, start=40), "tok-b")

    p = _flush_cli("--spool", str(spool.dir), "--db", here)
    assert p.returncode == 2, p.stdout + p.stderr          # refused, as other errors of the command are
    said = " ".join(p.stderr.split())
    assert "2 files (50 rows) spooled for http://alice@db.example:8123/mev" in said
    assert f"the store configured now is {here}" in said and "--to DSN" in said
    assert "hunter2" not in p.stdout + p.stderr and "Traceback" not in p.stderr
    assert len(spool.pending()) == 2 and not (tmp_path / "clickhouse").exists()     # refused before connecting

    p = _flush_cli("--spool", str(spool.dir), "--to", here, "--db", here)
    assert p.returncode != 0 and "--to and --db" in " ".join(p.stderr.split())

    p = _flush_cli("--spool", str(spool.dir), "--to", "tcp://db.example:9000/mev")
    assert p.returncode == 2 and "--to: bad store DSN" in " ".join(p.stderr.split()), p.stderr

    p = _flush_cli("--spool", str(spool.dir), "--to", here)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 files flushed, 50 rows inserted" in " ".join(p.stdout.split())
    assert spool.pending() == []
    with connect(here) as store:
        assert store.count("tx_features") == 50


def test_cli_flushes_its_own_rows_and_names_the_ones_left_for_another_store(tmp_path):
    here = f"chdb://{tmp_path / 'clickhouse'}"
    Spool(tmp_path / "spool", target=here).write("tx_features", _tx(25, 6), "tok-own")
    Spool(tmp_path / "spool", target=ELSEWHERE).write("tx_features", _tx(15, 7, start=25), "tok-other")
    p = _flush_cli("--spool", str(tmp_path / "spool"), "--db", here)
    assert p.returncode == 1, p.stdout + p.stderr         # a file is left: not done
    out, err = " ".join(p.stdout.split()), " ".join(p.stderr.split())
    assert "1 files flushed, 25 rows inserted" in out and "1 files left" in out
    assert "1 files spooled for http://alice@db.example:8123/mev" in err and here in err
    with connect(here) as store:
        assert store.count("tx_features") == 25
