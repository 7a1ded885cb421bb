"""workbench/api pieces without a server: posted rows against the table, the hub's sequence
numbers, resumes and gaps, the token and address rules, the cursor."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter

import orjson
import pyarrow as pa
import pytest

from workbench.api.engine_batches import EngineBatch
from workbench.api.hub import Hub
from workbench.api.opportunity_rows import RowError, check_arrow_batch, check_batch
from workbench.api.recent import ROW_BITS, RecentOpportunities, page_table, store_cover
from workbench.api.security import Guard, is_loopback
from workbench.api.seq_index import uuid_bytes
from workbench.api.shared_frame import Shared
from workbench.api.service import ServeOptions
from workbench.api.store_access import BadQuery, OpportunityFilter, StoreAccess, decode_cursor, encode_cursor
from workbench.errors import ConfigError
from workbench.store import schema as S

pytestmark = pytest.mark.timeout(60)
T_IDX = 1_750_000_000_000_000_000


def _row(**over):
    r = {"timestamp_ns": 1_750_000_000_000_000_000, "opportunity_id": str(uuid.uuid4()), "type": "sandwich",
         "profit": 0.5, "pools": ["PoolA"]}
    r.update(over)
    return r


def test_a_good_batch_takes_the_tables_shape_with_defaults_filled():
    b = check_batch(orjson.dumps([_row(), _row(type="arbitrage", score=None)]))
    names = [c.name for c in S.TABLES["mev_opportunities"].columns]
    assert b.table.column_names == names
    assert b.table.num_rows == 2
    assert b.rows[1]["slot"] == -1                      # the column's DEFAULT
    assert b.rows[1]["score"] != b.rows[1]["score"]     # null -> NaN for a NaN-default float


@pytest.mark.parametrize("bad, row, field, words", [
    ([_row(), _row(profit="much")], 1, "profit", "a number"),
    ([_row(), _row(type="frontrun")], 1, "type", "one of"),
    ([_row(opportunity_id="not-a-uuid")], 0, "opportunity_id", "UUID"),
    ([_row(), {k: v for k, v in _row().items() if k != "pools"}], 1, "pools", "required"),
    ([_row(colour="red")], 0, "colour", "not a column"),
    ([_row(slot=2**63)], 0, "slot", "outside"),
    ([_row(timestamp_ns=-5)], 0, "timestamp_ns", "integer time"),
    ([_row(pools="PoolA")], 0, "pools", "list of strings"),
])
def test_a_bad_row_is_named_by_row_and_field(bad, row, field, words):
    with pytest.raises(RowError) as e:
        check_batch(orjson.dumps(bad))
    assert (e.value.row, e.value.field) == (row, field)
    assert words in e.value.message


def test_an_id_twice_in_one_batch_is_refused():
    r = _row()
    with pytest.raises(RowError) as e:
        check_batch(orjson.dumps([r, _row(), dict(r)]))
    assert (e.value.row, e.value.field) == (2, "opportunity_id")


def test_not_json_and_not_a_list_are_refused_with_a_message():
    for body in (b"{nope", b'{"a": 1}', b"3"):
        with pytest.raises(RowError) as e:
            check_batch(body)
        assert e.value.row is None


def _drain(q):
    """The queued (channel, first, last, content): a shared frame's payload, or text for one client."""
    out = []
    while not q.empty():
        ch, first, last, data = q.get_nowait()
        out.append((ch, first, last, data.payload if isinstance(data, Shared) else data))
    return out


def test_hub_numbers_items_and_a_resume_from_memory_has_no_hole_or_repeat():
    async def go():
        hub = Hub(queue_frames=100, history_items=1000)
        hub.publish("opportunities", [b'{"i":%d}' % i for i in range(5)])
        c = hub.new_client()
        hub.subscribe(c, ["opportunities"], 2)
        hub.publish("opportunities", [b'{"i":%d}' % i for i in range(5, 8)])
        frames = [orjson.loads(f[3]) for f in _drain(c.queue)]
        got = [r["i"] for f in frames for r in f["rows"]]
        assert got == [2, 3, 4, 5, 6, 7]
        seqs = [(f["first_seq"], f["last_seq"]) for f in frames]
        assert seqs == [(2, 4), (5, 7)]
    asyncio.run(go())


def test_a_resume_older_than_memory_gets_a_counted_gap_first():
    async def go():
        hub = Hub(queue_frames=100, history_items=3)
        hub.publish("opportunities", [b"%d" % i for i in range(10)])
        c = hub.new_client()
        hub.subscribe(c, ["opportunities"], 0)
        frames = [orjson.loads(f[3]) for f in _drain(c.queue)]
        assert frames[0]["type"] == "gap" and frames[0]["missed"] == 7 and frames[0]["last_seq"] == 6
        assert frames[1]["rows"] == [7, 8, 9] and frames[1]["first_seq"] == 7
    asyncio.run(go())


def test_a_slow_client_gets_a_gap_message_and_a_fast_one_loses_nothing():
    async def go():
        hub = Hub(queue_frames=2, history_items=1000)
        slow, fast = hub.new_client(), hub.new_client()
        hub.subscribe(slow, ["opportunities"], None)
        hub.subscribe(fast, ["opportunities"], None)
        got_fast = []
        for i in range(6):
            hub.publish("opportunities", [b"%d" % i])
            got_fast += [r for f in _drain(fast.queue) for r in orjson.loads(f[3])["rows"]]
        assert got_fast == list(range(6))
        queued = [orjson.loads(f[3]) for f in _drain(slow.queue)]
        assert [f["rows"] for f in queued] == [[0], [1]]          # the queue held two frames; 2..5 missed
        hub.publish("opportunities", [b"6"])
        after = [orjson.loads(f[3]) for f in _drain(slow.queue)]
        assert after[0] == {"type": "gap", "channel": "opportunities", "missed": 4, "first_seq": 2,
                            "last_seq": 5, "reason": "the client read too slowly"}
        assert after[1]["rows"] == [6] and after[1]["first_seq"] == 6
        assert hub.missed == 4
    asyncio.run(go())


def test_a_gap_at_the_end_of_a_burst_is_told_at_the_next_tick():
    async def go():
        hub = Hub(queue_frames=1, history_items=1000)
        c = hub.new_client()
        hub.subscribe(c, ["opportunities"], None)
        for i in range(3):
            hub.publish("opportunities", [b"%d" % i])
        assert [orjson.loads(f[3])["rows"] for f in _drain(c.queue)] == [[0]]
        hub.flush_gaps()                               # no new frame: the tick tells of the gap
        gap = orjson.loads(_drain(c.queue)[0][3])
        assert (gap["type"], gap["missed"], gap["first_seq"], gap["last_seq"]) == ("gap", 2, 1, 2)
    asyncio.run(go())


def test_off_loopback_needs_a_token(monkeypatch):
    monkeypatch.delenv("WORKBENCH_API_TOKEN", raising=False)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    with pytest.raises(ConfigError, match="--token"):
        ServeOptions(db="chdb:///x", host="0.0.0.0").checked()
    assert ServeOptions(db="chdb:///x", host="0.0.0.0", token="t").checked().token == "t"
    monkeypatch.setenv("WORKBENCH_API_TOKEN", "from-env")
    assert ServeOptions(db="chdb:///x", host="10.1.2.3").checked().token == "from-env"


def test_guard_refuses_without_and_with_a_wrong_token_but_never_healthz():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(path, headers):
        sent = []

        async def send(m):
            sent.append(m)

        await Guard(app, "sekrit")({"type": "http", "path": path, "headers": headers}, None, send)
        return sent[0]["status"]

    async def go():
        assert await call("/v1/stats", []) == 401
        assert await call("/v1/stats", [(b"authorization", b"Bearer nope")]) == 403
        assert await call("/v1/stats", [(b"authorization", b"Bearer sekrit")]) == 200
        assert await call("/healthz", []) == 200
    asyncio.run(go())


def test_cursor_round_trips_and_a_foreign_one_is_refused():
    c = encode_cursor(1_750_000_000_123_456_789, "c9b536b9-5c1e-56d0-a2b1-007cc4252f43")
    assert decode_cursor(c) == (1_750_000_000_123_456_789, "c9b536b9-5c1e-56d0-a2b1-007cc4252f43")
    with pytest.raises(BadQuery, match="cursor"):
        decode_cursor("garbage!")


# --- Arrow IPC bodies (POST) and the GET index (api/recent.py) ----------------------------------------
def _arrow(rows: list[dict] | pa.Table, chunk: int | None = None) -> bytes:
    """Rows (or a table) as an Arrow IPC stream, in record batches of ``chunk`` rows at most."""
    t = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t, max_chunksize=chunk)
    return sink.getvalue().to_pybytes()


def test_an_arrow_batch_is_checked_like_the_same_json_batch():
    rows = [_row(slot=3, score=0.25), _row(type="arbitrage", score=None, slot=7)]
    a, j = check_arrow_batch(_arrow(rows)), check_batch(orjson.dumps(rows))
    assert a.ids == j.ids and orjson.dumps(a.rows) == orjson.dumps(j.rows) and a.table.schema == j.table.schema
    ts = pa.table({"timestamp_ns": pa.array([rows[0]["timestamp_ns"]], pa.timestamp("ns")),
                   "opportunity_id": [rows[0]["opportunity_id"]], "type": ["sandwich"], "profit": [0.5],
                   "pools": [["PoolA"]]})
    assert check_arrow_batch(_arrow(ts)).rows[0]["timestamp_ns"] == rows[0]["timestamp_ns"]


@pytest.mark.parametrize("rows, row, field, words", [
    ([_row(profit="0.5"), _row(profit="much")], 0, "profit", "a number"),     # a string column for a float
    ([{k: v for k, v in _row().items() if k != "pools"}], 0, "pools", "required"),
    ([_row(slot=1), _row(slot=None)], 1, "slot", "an integer"),                      # a null in a non-nullable column
    ([_row(opportunity_id="11111111-1111-1111-1111-111111111111")] * 2, 1, "opportunity_id", "also row 0"),
    ([_row(colour="red")], 0, "colour", "not a column"),
])
def test_a_bad_arrow_batch_is_named_by_row_and_field(rows, row, field, words):
    with pytest.raises(RowError) as e:
        check_arrow_batch(_arrow(rows))
    assert (e.value.row, e.value.field) == (row, field) and words in e.value.message


@pytest.mark.parametrize("body", [b"", b"not arrow at all", _arrow([_row()])[:-30]])
def test_an_unreadable_arrow_body_says_where_it_stopped(body):
    with pytest.raises(RowError) as e:
        check_arrow_batch(body)
    assert "Arrow IPC stream" in e.value.message and f"of {len(body)}" in e.value.message


def _index_rows(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    return [_row(timestamp_ns=1_750_000_000_000_000_000 + rnd.randrange(50), opportunity_id=str(uuid.UUID(
        int=rnd.getrandbits(128))), type=rnd.choice(["sandwich", "arbitrage"]), profit=rnd.choice([0.1, 0.7]),
        pools=[rnd.choice(["PoolA", "PoolB"])], score=rnd.choice([None, 0.2, 0.8])) for _ in range(n)]


@pytest.fixture
def store(tmp_path):
    s = StoreAccess(f"chdb://{tmp_path / 'db'}")
    yield s
    s.close()


def test_memory_pages_equal_the_stores_and_a_merge_fills_what_the_store_lacks(store):
    stored, pending = _index_rows(40, 1), _index_rows(25, 2)
    store.insert(check_batch(orjson.dumps(stored)))
    store.wait_posts_inserted()                 # (posted rows are inserted in the background: post_spool.py)
    schema = store.page_schema()
    memory = RecentOpportunities(schema, None)            # every row in memory
    for rows in (stored, pending):
        memory.add(page_table(check_batch(orjson.dumps(rows)).table, schema))
    mixed = RecentOpportunities(schema, store_cover(store.last_key()))  # the store's rows, and pending in memory
    mixed.add(page_table(check_batch(orjson.dumps(pending)).table, schema))
    for f in (OpportunityFilter([]), OpportunityFilter(["sandwich"], min_profit=0.5),
              OpportunityFilter([], pool="PoolB", min_score=0.5), OpportunityFilter([], since_ns=T_IDX + 20)):
        after, pages = None, []
        while True:
            assert memory.covers(f, after)
            a = memory.encode_json(*memory.page_from_memory(f, 6, after))
            if mixed.covers(f, after):
                b = mixed.encode_json(*mixed.page_from_memory(f, 6, after))
            else:
                b = mixed.encode_json(*mixed.page_merged(f, 6, after, store.opportunity_rows(f, 7, after)))
            assert a == b, f
            pages.append(a)
            if a[1] is None:
                break
            after = decode_cursor(a[1])
        got = [r["opportunity_id"] for body, _ in pages for r in orjson.loads(body)["rows"]]
        assert len(got) == len(set(got)) and got, f


def test_memory_is_bounded_and_its_cover_rises_to_what_it_dropped():
    schema = pa.schema([("timestamp_ns", pa.int64()), ("opportunity_id", pa.string())])
    idx = RecentOpportunities(schema, None, capacity=5)
    keys = sorted((T_IDX + i, str(uuid.uuid4())) for i in range(8))
    idx.add(pa.Table.from_pylist([{"timestamp_ns": t, "opportunity_id": i} for t, i in keys], schema=schema))
    assert len(idx) == 5 and idx.cover == keys[2]
    assert not idx.covers(OpportunityFilter([]), None) and not idx.covers(OpportunityFilter([]), keys[1])
    assert idx.covers(OpportunityFilter([]), keys[2]) and idx.covers(OpportunityFilter([], since_ns=T_IDX + 3), None)
    v = idx.version
    assert idx.add(pa.Table.from_pylist([{"timestamp_ns": keys[5][0], "opportunity_id": keys[5][1]}],
                                        schema=schema)) == 0 and idx.version == v     # an id held: nothing new


def test_a_cached_page_lives_until_the_next_row():
    schema = pa.schema([("timestamp_ns", pa.int64()), ("opportunity_id", pa.string())])
    idx = RecentOpportunities(schema, None)
    idx.remember("q", (b"page", None), idx.version)
    assert idx.cached("q") == (b"page", None)
    idx.add(pa.Table.from_pylist([{"timestamp_ns": T_IDX, "opportunity_id": "x"}], schema=schema))
    assert idx.cached("q") is None
    idx.remember("q", (b"stale", None), idx.version - 1)    # made before the row arrived: not kept
    assert idx.cached("q") is None
    idx.hold(True)                  # the run's rows wait outside memory and reach the store unseen: not kept
    idx.remember("q", (b"held", None), idx.version)
    assert idx.cached("q") is None
    idx.hold(False)
    idx.remember("q", (b"page", None), idx.version)
    assert idx.cached("q") == (b"page", None)


def test_engine_rows_wait_for_the_store_to_show_their_run_then_enter_memory_with_its_id(store, tmp_path):
    from types import SimpleNamespace

    from workbench.api.recent_route import opportunity_pages
    from workbench.store.writer import StoreWriter

    old = StoreWriter(store.dsn, tmp_path / "spool-old")
    old.start()
    old.record_run_start("an-earlier-run", started_ns=T_IDX)           # started before this server: not ours
    old.close(30)
    svc = SimpleNamespace(store=store, opportunity_hooks=[])
    pages = opportunity_pages(svc)
    engine_rows = pa.Table.from_pylist([_row(), _row(type="arbitrage")])  # an engine batch carries no run id
    svc.opportunity_hooks[0](_engine_batch(engine_rows))
    assert pages.recent.held and len(pages.recent) == 0
    body, _, source = asyncio.run(pages.page(OpportunityFilter([]), 10, None, False))
    assert source == "store+memory" and orjson.loads(body)["rows"] == []    # held back: the store answers
    w = StoreWriter(store.dsn, tmp_path / "spool")
    w.start()
    run_id = w.record_run_start(source="replay")
    w.close(30)
    body, _, source = asyncio.run(pages.page(OpportunityFilter([]), 10, None, False))
    rows = orjson.loads(body)["rows"]
    assert source == "memory" and not pages.recent.held
    assert [r["run_id"] for r in rows] == [run_id, run_id]
    assert sorted(r["opportunity_id"] for r in rows) == sorted(engine_rows.column("opportunity_id").to_pylist())

    # a batch whose rows cannot be put in the page shape (conform refuses a column the table lacks) enters
    # memory by its keys; the first page that reads it leaves it out and asks the store from then on
    later = [_row(timestamp_ns=T_IDX + 5), _row(timestamp_ns=T_IDX + 6)]
    good, bad = pa.Table.from_pylist(later[:1]), pa.Table.from_pylist(later[1:]).append_column("colour", pa.array(["red"]))
    svc.opportunity_hooks[0](_engine_batch(good))
    svc.opportunity_hooks[0](_engine_batch(bad))
    body, _, source = asyncio.run(pages.page(OpportunityFilter([]), 10, None, False))
    got = [r["opportunity_id"] for r in orjson.loads(body)["rows"]]
    assert source == "store+memory" and later[0]["opportunity_id"] in got and later[1]["opportunity_id"] not in got
    assert pages.recent.row(later[1]["opportunity_id"]) is None
    assert pages.recent.row(later[0]["opportunity_id"])[0]["run_id"] == run_id


def _engine_batch(t: pa.Table) -> EngineBatch:
    """A batch as the run's sink thread makes it ready (engine_batches.py), of rows in the store's names."""
    ids = t.column("opportunity_id").to_pylist()
    return EngineBatch(t, [orjson.dumps(r) for r in t.to_pylist()], t.column("timestamp_ns").to_numpy(), ids,
                       uuid_bytes(ids), Counter(t.column("type").to_pylist()))


def test_uuid_text_and_enum_labels_are_the_per_row_values():
    from workbench.api.recent import enum_labels, uuid_text
    ids = [uuid.UUID(int=random.Random(7).getrandbits(128) ^ i) for i in range(40)]
    arr = pa.array([u.bytes for u in ids], pa.binary(16))
    for part in (arr, arr.slice(5, 20), arr.slice(0, 0)):
        assert uuid_text(part).to_pylist() == [str(uuid.UUID(bytes=b)) for b in part.to_pylist()]
    pairs = [("arbitrage", 1), ("sandwich", 2), ("liquidation", 3)]
    codes = pa.array([3, 1, 2, 2, 1], pa.int8())
    assert enum_labels(codes.slice(1), pairs, "t").to_pylist() == ["arbitrage", "sandwich", "sandwich", "arbitrage"]
    for bad in ([0], [4], [1, 9]):
        with pytest.raises(ValueError, match="outside the enum"):
            enum_labels(pa.array(bad, pa.int8()), pairs, "t")


def test_memory_taken_as_tables_answers_byte_for_byte_as_the_store(store):
    """Rows entering memory as tables (UUIDs as 16 bytes, enums as codes, as the engine's conformed
    batches come) give the store's pages and the store's row for a GET by id."""
    rows = _index_rows(30, 3)
    store.insert(check_batch(orjson.dumps(rows)))
    store.wait_posts_inserted()
    schema = store.page_schema()
    table = check_batch(orjson.dumps(rows)).table
    ids = pa.array([uuid.UUID(s).bytes for s in table.column("opportunity_id").to_pylist()], pa.binary(16))
    table = table.set_column(table.column_names.index("opportunity_id"), "opportunity_id", ids)
    memory = RecentOpportunities(schema, None, capacity=25)
    memory.add(page_table(table.slice(0, 12), schema))
    assert memory.add(page_table(table.slice(6, 24), schema)) == 18          # ids held are skipped
    assert len(memory) == 25 and memory.cover is not None
    f, after = OpportunityFilter([]), memory.cover
    while True:
        a = memory.encode_json(*memory.page_from_memory(f, 4, after))
        b = memory.encode_json(*memory.page_merged(f, 4, after, store.opportunity_rows(f, 5, after)))
        assert a == b
        if a[1] is None:
            break
        after = decode_cursor(a[1])
    for r in rows:
        held = memory.row(r["opportunity_id"])
        assert held is None or held[1] == store.opportunity(r["opportunity_id"])
    assert sum(memory.row(r["opportunity_id"]) is not None for r in rows) == 25


def test_memory_entries_leave_the_collector_and_a_batch_goes_with_its_last_row():
    """Each held row's entry is one int (its batch's number and its row): the cycle collector stops
    tracking it, so a full memory does not lengthen full collections; a batch is let go when the
    last of its rows is dropped."""
    import gc

    from workbench.api.posted_json import row_dicts
    from workbench.api.posted_rows import posted_rows
    from workbench.api.post_columns import RULES, check_group
    memory = RecentOpportunities(pa.schema([(r.name, r.arrow) for r in RULES]), None, capacity=25)
    groups = [_index_rows(10, 10 + k) for k in range(4)]
    for rows in groups:
        g = check_group([(orjson.dumps(rows), False)])
        p = posted_rows(g)
        memory.add_posted(p.items, p.ids, p.times, row_dicts)
    assert len(memory) == 25
    gc.collect()
    gc.collect()            # (a chunk is untracked by the collection after the one that untracked its keys)
    assert not any(map(gc.is_tracked, memory.keys.chunks))      # keys (time, id, entry): atoms only
    # the 25 newest keys are held: the batches of the others are gone, the rest still answer by id
    held = {k[1] for k in memory.keys.iter_from(None, True)}
    assert all(memory.rows[k[1]] == k[2] for k in memory.keys)
    assert len(memory._batches) == len({memory.rows[oid] >> ROW_BITS for oid in held}) <= 4
    assert all(memory.row(oid)[0]["opportunity_id"] == oid for oid in held)


def test_the_memory_id_map_answers_as_one_dict_would():
    """api/id_entries.py against a dict under random adds, pops and look-ups: from a table made small
    (grown as ids come, runs of probes long, each pop's backward shift moving others) and one made
    for its size; ids of one prefix and a counter (a load test's), random ones, and the nil id."""
    import random

    from workbench.api.id_entries import SLOTS_MIN, IdEntries
    rnd = random.Random(5)
    ids = [str(uuid.UUID(int=rnd.getrandbits(128))) for _ in range(2_000)]
    ids += [f"0000000{k % 3}-0000-4000-8000-{k:012x}" for k in range(2_000)] + [str(uuid.UUID(int=0))]
    for m in (IdEntries(), IdEntries(5_000)):
        want, slots = {}, len(m._tab)
        assert not len(m) and m.get(ids[0]) is None and (m.entries(ids[:5]) == -1).all() and ids[0] not in m
        for step in range(400):
            some = rnd.sample(ids, 40)
            fresh = m.add_new(some, step * 100)
            want.update((oid, step * 100 + k) for k, oid in enumerate(some) if fresh[k])
            some = rnd.sample(ids, 10)
            some += some[:2]                        # (twice in one call: the first goes in)
            fresh = m.add_new(some, 10**6 + step * 100)
            for k, oid in enumerate(some):
                assert fresh[k] == (oid not in want)
                if fresh[k]:
                    want[oid] = 10**6 + step * 100 + k
            gone = rnd.sample(sorted(want), min(len(want), 30)) + rnd.sample(ids, 3)
            assert m.pop_many(gone).tolist() == [want.pop(oid, -1) for oid in gone]
            probe = rnd.sample(ids, 30)
            assert m.entries(probe).tolist() == [want.get(oid, -1) for oid in probe]
            assert all((oid in m) == (oid in want) and m.get(oid) == want.get(oid) for oid in probe)
            assert len(m) == len(want)
        assert all(m[oid] == e for oid, e in want.items()) and m.entries(list(want)).min() >= 0
        assert (len(m._tab) > slots) == (slots == SLOTS_MIN)        # the small one grew; the other, made at its size, not
    # what is not a canonical id is never looked up (upper case, other forms, other types)
    some = next(iter(want))
    assert m.get(some.upper()) is None and m.get(some.replace("-", "")) is None and m.get(None) is None
    with pytest.raises(KeyError):
        m[some.upper()]