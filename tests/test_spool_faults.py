"""One bad spool file is set aside and never blocks the others, nor a later run.

Each class of bad file (an unknown table, an Arrow file cut short, columns that do not fit the
table or are of the wrong type, a stray file that is no spool file, an Arrow file without spool
metadata) is put FIRST in the spool, before good files: the flush inserts the good ones, moves
the bad one to ``rejected/`` with a reason file naming why, and raises nothing; a writer
starting on such a spool (what every replay with a store does) runs and stores its rows."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest

from store_helpers import make_opportunities, make_tx_features
from workbench.store import StoreWriter, conform, connect
from workbench.store.spool import REASON_SUFFIX, REJECTED, Spool, read_spool_file

pytestmark = pytest.mark.timeout(120)
EARLY = "00000000000000000001-1-000000"      # sorts before every file Spool.write names now


def _tx(n, seed, start=0):
    return conform("tx_features", make_tx_features(n, seed=seed, start=start), "r-spool")


def _unknown_table(spool: Spool) -> str:
    p = spool.write("no_such_table", _tx(10, 1), "tok-unknown")
    p.rename(spool.dir / f"{EARLY}.no_such_table.arrow")
    return "which the store does not have"


def _truncated(spool: Spool) -> str:
    p = spool.write("tx_features", _tx(200, 2, start=10_000), "tok-cut")
    data = p.read_bytes()
    (spool.dir / f"{EARLY}.tx_features.arrow").write_bytes(data[: len(data) // 2])
    p.unlink()
    return "unreadable"


def _wrong_columns(spool: Spool) -> str:
    bad = _tx(10, 3, start=20_000).drop_columns(["signature"]).append_column("surprise", pa.array(range(10)))
    p = spool.write("tx_features", bad, "tok-columns")
    p.rename(spool.dir / f"{EARLY}.tx_features.arrow")
    return "do not fit the table tx_features"


def _wrong_types(spool: Spool) -> str:
    t = _tx(10, 5, start=30_000)
    bad = t.set_column(t.schema.get_field_index("size"), "size", pa.array(["big"] * 10))
    p = spool.write("tx_features", bad, "tok-types")
    p.rename(spool.dir / f"{EARLY}.tx_features.arrow")
    return "do not fit the table tx_features"


def _stray_file(spool: Spool) -> str:
    spool.dir.mkdir(parents=True, exist_ok=True)
    (spool.dir / "notes.txt").write_text("a file someone left here\n")
    return "not a spool file"


def _foreign_arrow(spool: Spool) -> str:
    spool.dir.mkdir(parents=True, exist_ok=True)
    t = _tx(5, 4)
    with pa.OSFile(str(spool.dir / f"{EARLY}.tx_features.arrow"), "wb") as f, pa.ipc.new_file(f, t.schema) as w:
        w.write_table(t)
    return "not a workbench spool file"


BAD = {"unknown_table": _unknown_table, "truncated": _truncated, "wrong_columns": _wrong_columns,
       "wrong_types": _wrong_types, "stray_file": _stray_file, "foreign_arrow": _foreign_arrow}


def _rejected(spool: Spool) -> dict[str, str]:
    d = spool.dir / REJECTED
    return {p.name[: -len(REASON_SUFFIX)]: p.read_text() for p in d.glob("*" + REASON_SUFFIX)} if d.is_dir() else {}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_bad_spool_file_is_set_aside_and_the_others_go_in(kind, dsn, tmp_path):
    spool = Spool(tmp_path / "spool", target=dsn)
    why = BAD[kind](spool)
    spool.write("tx_features", _tx(300, 10, start=0), "tok-a")
    spool.write("tx_features", _tx(200, 11, start=300), "tok-b")
    assert len(spool.pending()) == 3
    with connect(dsn) as store:
        stats = spool.flush(store)
        stored = store.count("tx_features")
    assert stored == 500 and stats.files == 2 and stats.rows_inserted == 500
    assert spool.pending() == [] and stats.files_left == 0 and not stats.errors
    assert len(stats.rejected) == 1 and why in stats.rejected[0]
    reasons = _rejected(spool)
    assert len(reasons) == 1
    name, text = next(iter(reasons.items()))
    assert (spool.dir / REJECTED / name).is_file() and why in text and name.split(".")[0] in text
    with connect(dsn) as store:                # set aside once: a second flush has nothing to do
        again = spool.flush(store)
    assert (again.files, again.rejected, again.errors) == (0, [], [])


def test_a_writer_starting_on_a_poisoned_spool_stores_its_rows(dsn, tmp_path, caplog):
    """The issue's case: every later replay exited 2 because the writer's start flush died."""
    spool = Spool(tmp_path / "spool", target=dsn)
    _unknown_table(spool)
    _truncated(spool)
    spool.write("tx_features", _tx(100, 12, start=50_000), "tok-old")
    with StoreWriter(dsn, tmp_path / "spool", run_id="r-after") as w:
        w.put("tx_features", make_tx_features(400, seed=13, start=60_000))
        stats = w.close()
    assert stats.rows_inserted == 400 and stats.rows_flushed == 100 and stats.spool_files_left == 0
    assert len(_rejected(spool)) == 2
    with connect(dsn) as store:
        assert store.count("tx_features") == 500
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("set aside in" in m for m in said) == 2, said


def test_cli_flush_spool_sets_aside_and_goes_on(dsn, tmp_path):
    spool = Spool(tmp_path / "spool", target=dsn)
    _unknown_table(spool)
    _stray_file(spool)
    spool.write("tx_features", _tx(50, 14), "tok-cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    p = subprocess.run([sys.executable, "-m", "workbench.cli", "db", "flush-spool", "--spool", str(spool.dir),
                        "--db", dsn], capture_output=True, text=True, timeout=100, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "KeyError" not in p.stderr
    assert "1 files flushed, 50 rows inserted" in p.stdout and "2 set aside" in p.stdout, p.stdout
    assert "no_such_table" in p.stderr and "notes.txt" in p.stderr, p.stderr
    assert sorted(_rejected(spool)) == [f"{EARLY}.no_such_table.arrow", "notes.txt"]


def test_read_spool_file_accepts_what_write_wrote(tmp_path):
    spool = Spool(tmp_path / "spool", target="http://alice:pw@db.example:8123/mev")
    item = read_spool_file(spool.write("tx_features", _tx(7, 15), "tok-ok", "it failed"))
    assert (item.table, item.dedup_token, item.error, item.data.num_rows) == ("tx_features", "tok-ok", "it failed", 7)
    assert item.target == "http://alice@db.example:8123/mev"


def test_a_batch_spooled_before_a_column_was_renamed_still_goes_in(dsn, tmp_path):
    """mev_opportunities.profit was profit_estimate before schema version 3 (Column.renamed_from):
    a batch an older workbench spooled under the old name is inserted, not set aside."""
    old = conform("mev_opportunities", make_opportunities(40, seed=7), "r-old")
    old = old.rename_columns(["profit_estimate" if n == "profit" else n for n in old.column_names])
    spool = Spool(tmp_path / "spool", target=dsn)
    spool.write("mev_opportunities", old, "tok-old-names")
    with connect(dsn) as store:
        stats = spool.flush(store)
        assert (stats.files, stats.rows_inserted, stats.rejected) == (1, 40, [])
        assert store.count("mev_opportunities") == 40
        assert store.scalar("SELECT sum(profit) FROM mev_opportunities") == pytest.approx(
            sum(old.column("profit_estimate").to_pylist()))
