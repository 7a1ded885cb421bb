"""The row files' compact columns (issue 16): ``signature`` as fixed_size_binary(64) raw bytes and
``programs`` as list<dictionary> whose dictionary holds only the names its rows use, sorted; and
the one conversion to text that readers use (engine/tables.py)."""

from __future__ import annotations

import base58
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.engine.features import TX_DTYPE
from workbench.engine.tables import (PROGRAMS_TYPE, SIGNATURE_TYPE, KeyNames, base58_signatures, canonical_programs,
                                     read_tx_features, readable_tx_table, tx_table)
from workbench.row_files import ParquetSink


def _keys(n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


def _rows(n: int, n_keys: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """``n`` transaction rows with random signatures and 0-4 distinct programs each (ids < n_keys)."""
    rng = np.random.default_rng(seed)
    tx = np.zeros(n, TX_DTYPE)
    tx["tx_index"] = np.arange(n)
    tx["_sig"] = rng.integers(0, 256, (n, 64), dtype=np.uint8)
    progs = []
    for i in range(n):
        k = int(rng.integers(0, 5))
        tx[i]["_prog_first"] = len(progs)
        tx[i]["num_programs"] = k
        progs += rng.choice(n_keys, k, replace=False).tolist()
    return tx, np.asarray(progs, np.int32)


def test_signatures_are_raw_bytes_and_read_back_as_base58():
    tx, progs = _rows(50, 20)
    t = tx_table(tx, progs, KeyNames(_keys(20)))
    assert t.schema.field("signature").type == SIGNATURE_TYPE
    assert t.column("signature").to_pylist() == [r.tobytes() for r in tx["_sig"]]
    text = base58_signatures(t.column("signature"))
    assert text.to_pylist() == [base58.b58encode(r.tobytes()).decode() for r in tx["_sig"]]
    # a slice starts at its own first row; a column already text is given back as it is
    assert base58_signatures(t.column("signature").slice(7, 3)).to_pylist() == text.to_pylist()[7:10]
    assert base58_signatures(text) is text


def test_programs_are_names_with_a_sorted_dictionary_of_the_used_names_only():
    keys = _keys(40)
    names = [base58.b58encode(k.tobytes()).decode() for k in keys]
    tx, progs = _rows(200, 40)
    t = tx_table(tx, progs, KeyNames(keys))
    col = t.column("programs").combine_chunks()
    assert col.type == PROGRAMS_TYPE
    want = [[names[p] for p in progs[r["_prog_first"]:r["_prog_first"] + r["num_programs"]]] for r in tx]
    assert col.to_pylist() == want
    dictionary = col.flatten().dictionary.to_pylist()
    assert dictionary == sorted({p for row in want for p in row})


def test_a_slice_or_a_join_is_cut_to_the_table_it_would_have_been():
    keys = _keys(40)
    tx, progs = _rows(300, 40)
    kn = KeyNames(keys)
    whole = tx_table(tx, progs, kn)
    # a join of two tables (different dictionaries), sliced: canonical_programs gives the column
    # tx_table builds from those rows alone
    joined = pa.concat_tables([tx_table(tx[:120], progs, kn), tx_table(tx[120:], progs, kn)]).combine_chunks()
    part = canonical_programs(joined.column("programs").slice(50, 100))
    alone = tx_table(tx[50:150], progs, kn).column("programs").combine_chunks()
    assert part.equals(alone)
    assert canonical_programs(whole.column("programs")).equals(whole.column("programs").combine_chunks())


def test_readable_table_and_reader_give_text(tmp_path):
    keys = _keys(10)
    tx, progs = _rows(30, 10)
    t = tx_table(tx, progs, KeyNames(keys))
    r = readable_tx_table(t)
    assert r.schema.field("signature").type == pa.string()
    assert r.schema.field("programs").type == pa.list_(pa.string())
    assert r.column("programs").to_pylist() == t.column("programs").to_pylist()
    assert readable_tx_table(r) is r
    pq.write_table(t, tmp_path / "tx_features.parquet")
    back = read_tx_features(tmp_path / "tx_features.parquet", columns=["tx_index", "signature"])
    assert back.column("signature").to_pylist() == r.column("signature").to_pylist()


@pytest.mark.parametrize("row_group_rows", [7, 64])
def test_files_of_one_table_or_many_are_the_same_bytes(tmp_path, row_group_rows):
    """The row file's bytes depend on its rows only: one table, or tables of any sizes."""
    keys = _keys(60)
    tx, progs = _rows(150, 60)
    kn = KeyNames(keys)
    files = []
    for cut in ([0, 150], [0, 1, 40, 41, 99, 150]):
        out = tmp_path / f"cut{len(cut)}"
        out.mkdir()
        sink = ParquetSink(out, kn, row_group_rows=row_group_rows)
        for lo, hi in zip(cut, cut[1:]):
            sink.write("tx_features", tx_table(tx[lo:hi], progs, kn))
        sink.close({"tx_features": tx_table(tx[:0], progs, kn)})
        files.append((out / "tx_features.parquet").read_bytes())
    assert files[0] == files[1]


def test_opportunity_ids_are_the_uuid5_of_their_names():
    """The ids made for all rows at once are ``str(uuid.uuid5(OPP_NAMESPACE, name))`` of each row's
    name, as the uuid module makes them (ids written before stay the ids of the same rows)."""
    import uuid

    from workbench.engine.opps import OPP_DTYPE
    from workbench.engine.tables import OPP_NAMESPACE, opportunity_ids
    rng = np.random.default_rng(9)
    opps = np.zeros(257, OPP_DTYPE)
    for c in ("packet_index", "tx_index", "kind", "seq"):
        opps[c] = rng.integers(0, 2**31 if c != "kind" else 4, opps.shape[0])
    sigs = [base58.b58encode(rng.bytes(64)).decode() for _ in range(opps.shape[0])]
    got = opportunity_ids("cap:ü", opps, sigs)
    assert got.type == pa.string() and got.null_count == 0
    assert got.to_pylist() == [str(uuid.uuid5(OPP_NAMESPACE, f"cap:ü:{p}:{t}:{k}:{s}:{sig}"))
                               for p, t, k, s, sig in zip(opps["packet_index"].tolist(), opps["tx_index"].tolist(),
                                                          opps["kind"].tolist(), opps["seq"].tolist(), sigs)]
    assert opportunity_ids("c", opps[:0], []).to_pylist() == []
