"""The embedded store's two insert paths (store/clickhouse.py ``_insert_arrow_embedded``): a small
batch pushed from memory as one ArrowStream INSERT (in pieces), a large one through an Arrow file
read with ``file()``. Both store the same values, and each is one statement: a value the store refuses
anywhere in the batch writes nothing of it (a posted group's 422/503 promise rests on that)."""

from __future__ import annotations

import uuid

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from test_api_post_columns import _canon, _full
from workbench.api.post_columns import check_group, store_table
from workbench.errors import StoreError
from workbench.store import clickhouse, connect

pytestmark = pytest.mark.timeout(180)

TABLE = "mev_opportunities"
ROWS = 3_000


def _batch() -> pa.Table:
    return store_table(check_group([(orjson.dumps([_full() for _ in range(ROWS)]), False)]).rows)


def _with_new_ids(t: pa.Table) -> pa.Table:
    at = t.column_names.index("opportunity_id")
    return t.set_column(at, "opportunity_id", pa.array([str(uuid.uuid4()) for _ in range(t.num_rows)]))


def _stored(store, ids) -> pa.Table:
    return store.query_arrow(f"SELECT * EXCEPT (opportunity_id) FROM {store.table(TABLE)} "
                             f"WHERE toString(opportunity_id) IN {{ids:Array(String)}} ORDER BY ALL",
                             {"ids": ids})


def test_both_paths_store_the_same_values(tmp_path, monkeypatch):
    store = connect(f"chdb://{tmp_path / 'db'}")
    try:
        streamed = _batch()
        assert streamed.num_rows <= clickhouse.EMBEDDED_STREAM_ROWS_MAX
        # the stream goes in pieces of an odd size: cut inside its messages, it stores the same values
        monkeypatch.setattr(clickhouse, "EMBEDDED_STREAM_PIECE_BYTES", 4_099)
        store.insert_arrow(TABLE, streamed)
        filed = _with_new_ids(streamed)
        monkeypatch.setattr(clickhouse, "EMBEDDED_STREAM_ROWS_MAX", ROWS - 1)      # this one through the file
        store.insert_arrow(TABLE, filed)
        assert store.count(TABLE) == 2 * ROWS
        a = _stored(store, streamed.column("opportunity_id").to_pylist())
        b = _stored(store, filed.column("opportunity_id").to_pylist())
        assert a.num_rows == ROWS and a.schema == b.schema
        rows = lambda t: [{k: _canon(v) for k, v in r.items()} for r in t.to_pylist()]   # NaN equal to NaN
        assert rows(a) == rows(b)
    finally:
        store.close()


@pytest.mark.parametrize("rows_max", [clickhouse.EMBEDDED_STREAM_ROWS_MAX, ROWS - 1], ids=["stream", "file"])
def test_a_value_the_store_refuses_writes_nothing_of_the_batch(tmp_path, monkeypatch, rows_max):
    monkeypatch.setattr(clickhouse, "EMBEDDED_STREAM_ROWS_MAX", rows_max)
    store = connect(f"chdb://{tmp_path / 'db'}")
    try:
        t = _batch()
        at = t.column_names.index("profit")
        text = [repr(v) for v in t.column("profit").to_pylist()]
        text[-1] = "not a number"                   # the last row: a profit the store cannot read
        bad = t.set_column(at, "profit", pa.array(text, pa.string()))
        with pytest.raises(StoreError, match="profit"):
            store.insert_arrow(TABLE, bad)
        assert store.count(TABLE) == 0
        store.insert_arrow(TABLE, t)               # the same batch without that value goes in whole
        assert store.count(TABLE) == ROWS
        assert pc.all(pc.is_in(t.column("opportunity_id"), value_set=pa.array(
            [r[0] for r in store.query_rows(f"SELECT toString(opportunity_id) FROM {store.table(TABLE)}")]))).as_py()
    finally:
        store.close()
