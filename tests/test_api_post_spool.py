"""Posts to an embedded store are answered once spooled and inserted in the background
(api/post_spool.py): a clean stop inserts what waits; a server killed after answering leaves
spool files that the next server on the store inserts before its first post, nothing lost and
nothing doubled (not even the rows of a file whose insert landed before the kill). A real
`workbench serve` on a free loopback port, killed with SIGKILL. Also: the store's own read of a
log file against the Arrow route, to the bit, and a failed insert tried again without doubling."""

from __future__ import annotations

import orjson
import pytest

from test_api_rest import _rows
from test_api_serve import Server

from workbench.api.opportunity_rows import TABLE, check_rows
from workbench.api.post_spool import post_spool_dir
from workbench.store import Spool, connect, parse_dsn

pytestmark = pytest.mark.timeout(600)


def _stored(tmp_path) -> tuple[int, set[str]]:
    """(rows, distinct ids) of the store's opportunities (no server may have it open)."""
    with connect(f"chdb://{tmp_path / 'db'}") as store:
        rows = store.query_rows(f"SELECT toString(opportunity_id) FROM {store.table(TABLE)}")
    return len(rows), {r[0] for r in rows}


def _spool_dir(tmp_path):
    return post_spool_dir(parse_dsn(f"chdb://{tmp_path / 'db'}"))


def test_posts_answered_before_a_kill_are_stored_once_after_a_restart(tmp_path):
    batches = [_rows(10, 0, 10_000, seed=500 + k) for k in range(40)]
    answered = []
    s = Server(tmp_path)
    try:
        for rows in batches:
            r = s.post("/v1/opportunities", rows)
            assert r.status_code == 201, r.text
            answered += r.json()["ids"]
    finally:
        s.proc.kill()           # no clean stop: what was spooled and not inserted stays in the spool
        s.proc.wait()
        s.log.close()
    assert len(answered) == 400
    s = Server(tmp_path)        # inserts the spool before it answers
    try:
        assert not list(_spool_dir(tmp_path).glob("*.jsonl"))
        again = s.post("/v1/opportunities", batches[-1])        # stored before the kill or by the replay
        assert again.status_code == 200 and again.json()["inserted"] == 0, again.text
    finally:
        s.stop()
    n, ids = _stored(tmp_path)
    assert n == len(answered) and ids == set(answered)


def _two_batches_one_stored(tmp_path):
    """Two batches of rows: the first posted and stored (a clean stop), the second not."""
    inserted, waiting = _rows(15, 0, 1000, seed=61), _rows(15, 1000, 2000, seed=62)
    s = Server(tmp_path)
    try:
        assert s.post("/v1/opportunities", inserted).status_code == 201
    finally:
        s.stop()
    assert not any(_spool_dir(tmp_path).iterdir())      # a clean stop inserted what waited
    return inserted, waiting


def _restart_stores_both_once(tmp_path, inserted, waiting):
    s = Server(tmp_path)
    try:
        assert not any(_spool_dir(tmp_path).iterdir())
        r = s.post("/v1/opportunities", inserted + waiting)
        assert r.status_code == 200 and r.json()["duplicates"] == 30, r.text
    finally:
        s.stop()
    n, ids = _stored(tmp_path)
    assert n == 30 and ids == {r["opportunity_id"] for r in inserted + waiting}


def test_a_restart_inserts_logged_rows_the_store_lacks_and_skips_those_it_has(tmp_path):
    """What a kill can leave: a log whose insert landed before its removal, one never inserted,
    and a line cut short (its post was never answered)."""
    inserted, waiting = _two_batches_one_stored(tmp_path)
    spool_dir = _spool_dir(tmp_path)
    (spool_dir / "7.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in check_rows(inserted).rows) + b"\n")
    (spool_dir / "12.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in check_rows(waiting).rows)
                                        + orjson.dumps(check_rows(waiting).rows[0])[:50])
    _restart_stores_both_once(tmp_path, inserted, waiting)


def test_a_restart_inserts_an_earlier_versions_arrow_spool_files(tmp_path):
    inserted, waiting = _two_batches_one_stored(tmp_path)
    spool_dir = _spool_dir(tmp_path)
    spool = Spool(spool_dir, target=parse_dsn(f"chdb://{tmp_path / 'db'}"))
    for rows in (inserted, waiting):
        spool.write(TABLE, check_rows(rows).table, "", fsync=False, compression=None)
    (spool_dir / ".00000000000000000000-1-000000.mev_opportunities.arrow.tmp").write_bytes(b"cut short")
    _restart_stores_both_once(tmp_path, inserted, waiting)


def test_a_post_spool_that_cannot_be_written_answers_503_and_keeps_nothing(tmp_path):
    _spool_dir(tmp_path).write_text("a file where the spool folder goes")
    s = Server(tmp_path)
    try:
        r = s.post("/v1/opportunities", _rows(5, 0, 100, seed=71))
        assert r.status_code == 503 and "post spool" in r.json()["error"], r.text
        assert s.get("/v1/opportunities", params={"limit": 100}).json()["rows"] == []
    finally:
        s.stop()
    assert _stored(tmp_path)[0] == 0


_CUT_SHORT = r'''
import logging, os, resource, signal, sys, threading
from pathlib import Path
import orjson
from workbench.api.opportunity_rows import check_rows
from workbench.api.post_spool import PostSpool
from workbench.errors import StoreError
logging.disable(logging.CRITICAL)       # (the spool's inserts have no store here: they fail, and say so)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
d = Path(sys.argv[1])
groups = [check_rows(orjson.loads(a)).rows for a in sys.argv[2:5]]
spool = PostSpool(None, d, threading.Lock())
spool.append([orjson.dumps(r) for r in groups[0]])
spool.wait_inserted()           # (its try failed) the insert thread took the rows and closed their file
# the next group goes to a new file, whose write stops at 600 bytes: a partial write, then EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (600, resource.RLIM_INFINITY))
try:
    spool.append([orjson.dumps(r) for r in groups[1]])
    print("no error")
except StoreError as e:
    print("refused:", e)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
spool.append([orjson.dumps(r) for r in groups[2]])
print("pending", spool.pending_rows())
'''


def test_a_write_cut_short_leaves_no_part_of_its_group_and_the_next_group_is_logged_whole(tmp_path):
    """A write the file size limit stops half way (as a full disk would): that group is refused
    (503) and no part of it stays in the log, where it would have joined the next group's first
    line; the groups before and after are logged whole."""
    import subprocess
    import sys

    groups = [_rows(3, 100 * k, 100 * k + 50, seed=80 + k) for k in range(3)]
    spool_dir = tmp_path / "db.posted"
    got = subprocess.run([sys.executable, "-c", _CUT_SHORT, str(spool_dir), *(orjson.dumps(g) for g in groups)],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    assert "refused: the post spool" in got.stdout and "pending 6" in got.stdout, got.stdout
    logs = sorted(spool_dir.glob("*.jsonl"), key=lambda p: int(p.stem))
    assert [p.stat().st_size == 0 for p in logs] == [False, True, False]     # the 600 bytes written were cut off
    lines = b"".join(p.read_bytes() for p in logs)
    assert lines.endswith(b"\n")
    ids = [orjson.loads(line)["opportunity_id"] for line in lines.splitlines()]
    assert ids == [r["opportunity_id"] for r in groups[0] + groups[2]]


def _fuzzed_rows(n: int, seed: int) -> list[dict]:
    """Rows whose floats are random bit patterns (huge, tiny, subnormal, negative zero), strings that
    need escapes, UInt64's top, nulls where the column's DEFAULT is nan."""
    import random
    import struct
    import uuid

    from workbench.api.post_columns import NAMES
    from workbench.api.posted_json import NAN_NAMES

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        r = {"timestamp_ns": 1_750_000_000_000_000_000 + i, "opportunity_id": str(uuid.UUID(int=rng.getrandbits(128))),
             "type": rng.choice(["arbitrage", "sandwich", "liquidation"]), "pools": ["P\u00e9\"\\\n", "\x01\u2028\U0001d11e"][:i % 3],
             "victim_signature": "".join(rng.choice("ab\"\\\n\t\u00e9\U0001d11e{}[],:") for _ in range(rng.randrange(20))),
             "amount_in": rng.choice([0, 2**64 - 1, rng.getrandbits(64)]), "slot": rng.choice([-2**63, 2**63 - 1, -1]),
             "source": rng.choice(["unknown", "replay", "live"])}
        for name in NAMES:
            if name == "profit" or name in NAN_NAMES:
                x = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
                x = x if x == x and abs(x) != float("inf") else rng.choice([0.0, -0.0, 5e-324, 1e16, 1.7976931348623157e308])
                r[name] = None if name in NAN_NAMES and rng.random() < 0.2 else x
        rows.append(r)
    return rows


def _exact(t) -> list[dict]:
    """A table's rows with each float as its bits (nan as one value)."""
    import math
    return [{k: ("nan" if math.isnan(v) else v.hex()) if isinstance(v, float) else v for k, v in r.items()}
            for r in t.to_pylist()]


def test_a_log_file_is_stored_as_its_rows_arrow_table_is_to_the_bit(tmp_path):
    """insert_log (the store reads the log's JSON lines itself, with file()) stores what the Arrow
    route (store_table, then insert_arrow) stores: every float to the bit, strings with escapes,
    UInt64's top, null as nan. A folder whose name file() would read as a glob takes the Arrow way."""
    from workbench.api.post_columns import check_group, store_table
    from workbench.api.post_spool import insert_log

    group = check_group([(orjson.dumps(_fuzzed_rows(600, seed=9)), False)])
    assert group.spans == [(0, 600)]
    ways = {}
    with connect(f"chdb://{tmp_path / 'db'}") as store:
        for way, folder in (("arrow", None), ("file", "log"), ("glob", "lo{g}*")):
            if folder is None:
                store.insert_arrow(TABLE, store_table(group.rows))
            else:
                path = tmp_path / folder / "1.jsonl"
                path.parent.mkdir()
                path.write_bytes(b"\n".join(group.items) + b"\n")
                insert_log(store, path)
            ways[way] = _exact(store.query_arrow(f"SELECT * FROM {store.table(TABLE)} ORDER BY opportunity_id"))
            store.command(f"TRUNCATE TABLE {store.table(TABLE)}")
    assert len(ways["arrow"]) == 600
    assert ways["file"] == ways["arrow"]
    assert ways["glob"] == ways["arrow"]


def test_a_failed_insert_is_tried_again_with_only_the_rows_the_store_lacks(tmp_path):
    """An insert that landed but answered with an error (the store is real; the error is put after
    its insert returns): the spool tries again after RETRY_S, with that file and the one logged
    meanwhile, through the checked route, and the store holds every row once; the files go."""
    import threading

    from workbench.api.post_columns import check_group
    from workbench.api.post_spool import PostSpool
    from workbench.errors import StoreError

    class AnswerLost:
        """The real store, whose first file insert fails after it has landed."""

        def __init__(self, store):
            self._store, self.file_inserts = store, 0

        def insert_file(self, *args, **kwargs):
            self._store.insert_file(*args, **kwargs)
            self.file_inserts += 1
            if self.file_inserts == 1:
                raise StoreError("the connection dropped before the answer (put by the test)")

        def __getattr__(self, name):
            return getattr(self._store, name)

    first, second = _rows(20, 0, 1_000, seed=81), _rows(15, 0, 1_000, seed=82)
    with connect(f"chdb://{tmp_path / 'db'}") as real:
        store = AnswerLost(real)
        spool = PostSpool(store, tmp_path / "spool", threading.RLock())
        spool.append(check_group([(orjson.dumps(first), False)]).items)
        spool.wait_inserted()                       # (returns at the failure)
        assert spool.failures == 1 and spool.pending_rows() == 20
        spool.append(check_group([(orjson.dumps(second), False)]).items)
        spool.wait_inserted()                       # the retry: both files, the rows the store lacks
        assert spool.pending_rows() == 0 and spool.inserts == 1 and store.file_inserts == 1
        spool.close()
        ids = [r[0] for r in real.query_rows(f"SELECT toString(opportunity_id) FROM {real.table(TABLE)}")]
    assert sorted(ids) == sorted(r["opportunity_id"] for r in first + second)
    assert not list((tmp_path / "spool").glob("*.jsonl"))
