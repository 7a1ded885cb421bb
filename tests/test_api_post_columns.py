"""Posts checked a group at a time (api/post_columns.py) against the value-by-value twin
(``check_batch``): the same rows, values and table for good requests, the same 422 (row, field,
message) for a bad one, and a bad request leaves the others of its group alone; the same for bodies
parsed by orjson first and for bodies decoded in pieces, and a slow pass (floats of 1e289 and more)
sends the next bodies and pieces to orjson. Also the row encoder that splits one JSON list, and the
in-memory id set against a Python set."""

from __future__ import annotations

import gc
import json
import math
import random
import uuid
from itertools import cycle, islice

import numpy as np
import orjson
import pytest

import msgspec

from workbench.api.opportunity_rows import RowError, check_batch
from workbench.api import post_columns, posted_json
from workbench.api.frames import dict_items
from workbench.api.post_columns import NAMES, check_group, joined_groups, store_table
from workbench.api.posted_json import NAN_NAMES, decode_rows, posted_items, row_dicts
from workbench.api.seen_ids import SeenIds, id_array
from workbench.errors import StoreError

pytestmark = pytest.mark.timeout(120)

T0 = 1_750_000_000_000_000_000


@pytest.fixture(autouse=True)
def _no_window(monkeypatch):
    """No window of parsed-first bodies left open by another test."""
    monkeypatch.setattr(posted_json, "parsed_first_until", 0.0)


@pytest.fixture(params=["scanned", "one pass", "parsed first", "in pieces"])
def decoder(request, monkeypatch):
    """Each body scanned (posted_scan.py: msgspec's pass for a body outside its subset), or, the scan
    turned off, decoded by msgspec's one pass, parsed by orjson first (a window open), or cut into
    pieces of one row each."""
    if request.param != "scanned":
        monkeypatch.setattr(post_columns, "scan", lambda body: None)
    if request.param == "parsed first":
        monkeypatch.setattr(posted_json, "parsed_first_until", math.inf)
    elif request.param == "in pieces":
        monkeypatch.setattr(posted_json, "PIECE_BYTES", 1)
    return request.param


def _full(**over) -> dict:
    """A row with every column, as GET gives it."""
    r = {"timestamp_ns": T0 + random.randrange(10**9), "opportunity_id": str(uuid.uuid4()), "type": "sandwich",
         "profit": 0.0123, "pools": ["PoolA", "PoolB"], "run_id": "r1", "slot": 312345678,
         "victim_signature": "5" * 87, "score": None, "expected_profit_lamports": 12300000, "tip_lamports": 10000,
         "detect_latency_ns": 4200, "source": "replay", "packet_index": 1234, "tx_index": 999,
         "trigger_signature": "4" * 87, "amount_in": 2**64 - 1, "amount_out": 1012300000, "profit_quote": -5,
         "profit_mint": "So11111111111111111111111111111111111111112", "position_id": -1}
    for n in NAMES:
        if n.startswith("f_"):
            r[n] = random.choice([None, 0.5, -1e300])
    r.update(over)
    return r


def _short(**over) -> dict:
    """A row with the required columns only (the rest take their DEFAULT)."""
    r = {"timestamp_ns": T0, "opportunity_id": str(uuid.uuid4()), "type": "arbitrage", "profit": 1.5,
         "pools": ["PoolC"]}
    r.update(over)
    return r


def _canon(v):
    """A value as a test compares it (NaN equal to NaN)."""
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return list(v) if isinstance(v, tuple) else v


def _dict(row) -> dict:
    """A checked row (``PostedRow``) as check_rows's dict: its None is nan."""
    d = msgspec.structs.asdict(row)
    return {k: math.nan if v is None and k in NAN_NAMES else v for k, v in d.items()}


def _values(r: dict) -> dict:
    return {k: _canon(v) for k, v in r.items()}


def _same_batch(group, span, body: bytes) -> None:
    """The rows of ``span`` in ``group`` are what check_batch makes of ``body``; their JSON items
    are its rows' JSON (the same values, keys in the same order)."""
    want = check_batch(body)
    lo, hi = span
    assert group.ids[lo:hi] == want.ids
    got_rows = [_dict(r) for r in group.rows[lo:hi]]
    assert [_values(r) for r in got_rows] == [_values(r) for r in want.rows]
    assert [list(r) for r in got_rows] == [list(r) for r in want.rows]       # key order too
    items = row_dicts(group.items[lo:hi])
    assert [_values(r) for r in items] == [_values(r) for r in want.rows]
    assert [list(r) for r in items] == [list(r) for r in want.rows]
    t = store_table(group.rows[lo:hi])
    assert t.schema == want.table.schema
    assert repr(t.to_pydict()) == repr(want.table.to_pydict())


BAD_ROWS = [
    ("profit", "much"), ("profit", None), ("slot", True), ("slot", 1.0), ("slot", 2**63), ("amount_in", -1),
    ("timestamp_ns", -5), ("timestamp_ns", "now"), ("type", "frontrun"), ("source", "paper"),
    ("opportunity_id", "not-a-uuid"), ("opportunity_id", 7), ("pools", "PoolA"), ("pools", ["A", None]),
    ("pools", ["A", 3]), ("run_id", 5), ("score", "high"), ("colour", "red"), ("pools", None),
    ("amount_in", 2**64), ("opportunity_id", str(uuid.UUID(int=7)) + "\n"), ("tip_lamports", -2**63 - 1),
]


@pytest.mark.parametrize("field, value", BAD_ROWS, ids=[f"{f}={v!r}" for f, v in BAD_ROWS])
def test_a_bad_request_gets_check_batchs_error_and_the_others_of_its_group_land(field, value, decoder):
    random.seed(1)
    good = [orjson.dumps([_full(), _short()]), orjson.dumps([_full() for _ in range(5)])]
    bad_rows = [_full(), _full(), _full(**{field: value}), _full()]
    bad = json.dumps(bad_rows).encode()        # (orjson writes no integer past 64 bits)
    group = check_group([(good[0], False), (bad, False), (good[1], False)])
    with pytest.raises(RowError) as want:
        check_batch(bad)
    got = group.spans[1]
    assert isinstance(got, RowError)
    assert (got.row, got.field, got.message) == (want.value.row, want.value.field, want.value.message)
    assert (got.row, got.field) == (2, field)
    assert group.spans[0] == (0, 2) and group.spans[2] == (2, 7)       # nothing of the bad request is laid out
    _same_batch(group, group.spans[0], good[0])
    _same_batch(group, group.spans[2], good[1])


@pytest.mark.parametrize("body", [
    b"{nope", b'{"a": 1}', b"3", orjson.dumps([1, 2]), orjson.dumps([_short(), "row"]),
    orjson.dumps([_short()] * 10_001),
], ids=["not-json", "object", "number", "not-objects", "a-string-row", "too-many"])
def test_bodies_refused_whole_get_the_same_message(body, decoder):
    group = check_group([(body, False), (orjson.dumps([_short()]), False)])
    with pytest.raises(RowError) as want:
        check_batch(body)
    assert isinstance(group.spans[0], RowError)
    assert group.spans[0].as_dict() == want.value.as_dict()
    assert group.spans[1] == (0, 1)


def test_an_id_twice_in_one_request_is_refused_there_and_across_requests_is_left_to_the_store():
    r = _full()
    twice = orjson.dumps([r, _full(), dict(r)])
    again = orjson.dumps([dict(r)])
    group = check_group([(twice, False), (again, False), (orjson.dumps([dict(r)]), False)])
    assert isinstance(group.spans[0], RowError)
    assert (group.spans[0].row, group.spans[0].field) == (2, "opportunity_id")
    assert "also row 0" in group.spans[0].message
    assert group.spans[1] == (0, 1) and group.spans[2] == (1, 2)       # duplicates across requests: the insert's
    assert group.ids == [r["opportunity_id"]] * 2


def test_forms_the_column_checks_leave_to_check_rows_are_accepted_with_its_values(decoder):
    """An upper-case or brace UUID, an integer profit: accepted, canonical, in arrival order."""
    random.seed(2)
    odd = [_full(opportunity_id="{" + str(uuid.uuid4()).upper() + "}"), _full(profit=3), _short(score=1)]
    bodies = [orjson.dumps([_full()]), orjson.dumps(odd), orjson.dumps([_short(), _short()])]
    group = check_group([(b, False) for b in bodies])
    assert group.spans == [(0, 1), (1, 4), (4, 6)]
    for span, body in zip(group.spans, bodies):
        _same_batch(group, span, body)
    assert group.rows[1].opportunity_id == odd[0]["opportunity_id"].strip("{}").lower()
    assert group.rows[2].profit == 3.0 and isinstance(group.rows[2].profit, float)


def test_nulls_of_a_column_null_in_every_row_or_in_some_become_nan_as_check_batch_makes_them():
    """A GET page posted back: optional floats null in every row of the group (one update per
    row), or in some rows only (row by row)."""
    random.seed(3)
    none = {n: None for n in NAMES if n.startswith("f_")}
    bodies = [orjson.dumps([_full(**none) for _ in range(3)]), orjson.dumps([_full(**none, score=0.5)]),
              orjson.dumps([_full(**{**none, "f_tx_size": 7.0})])]
    group = check_group([(b, False) for b in bodies])
    assert group.spans == [(0, 3), (3, 4), (4, 5)]
    for span, body in zip(group.spans, bodies):
        _same_batch(group, span, body)
    rows = [_dict(r) for r in group.rows]
    assert all(math.isnan(r["f_pool_depth_sol"]) for r in rows)
    assert rows[4]["f_tx_size"] == 7.0 and math.isnan(rows[3]["f_tx_size"])


def test_an_empty_request_and_the_rows_wrapper():
    rows = [_short(), _short()]
    group = check_group([(b"[]", False), (orjson.dumps({"rows": rows}), False)])
    assert group.spans == [(0, 0), (0, 2)]
    _same_batch(group, (0, 2), orjson.dumps(rows))


def test_the_one_pass_decoder_takes_the_usual_forms_with_check_batchs_values(decoder):
    """GET's rows posted back (nulls and all), the required columns alone, the rows wrapper: the
    fast pass takes them (else every test above would pass through check_rows alone)."""
    random.seed(4)
    for rows in ([_full() for _ in range(4)], [_short(), _short(score=None)], [_full(amount_in=2**64 - 1)]):
        for body in (orjson.dumps(rows), orjson.dumps({"rows": rows, "other": 1})):
            got = decode_rows(body)
            assert got is not None
            want = check_batch(body).rows
            assert [_values(_dict(r)) for r in got] == [_values(r) for r in want]
            assert [list(_dict(r)) for r in got] == [list(r) for r in want]
            assert [_values(r) for r in row_dicts(posted_items(got))] == [_values(r) for r in want]


@pytest.mark.parametrize("field, value", BAD_ROWS, ids=[f"{f}={v!r}" for f, v in BAD_ROWS])
def test_the_one_pass_decoder_leaves_every_bad_row_to_check_rows(field, value, decoder):
    assert decode_rows(json.dumps([_full(), _full(**{field: value})]).encode()) is None


ODD = {"timestamp_ns": [0, 2**63 - 1, 2**63, -1, 1.0, True, "1"], "opportunity_id": [None, "", "x"],
       "type": ["Sandwich", "", None], "profit": [0, -0.0, 1e308, 2**70, True, None, "1"],
       "pools": [[], [""], ["a", "b"], [None], "ab", [["a"]]], "slot": [-2**63, 2**63 - 1, 2**63, -2**63 - 1, 1.5],
       "amount_in": [0, 2**64 - 1, 2**64, -1, None], "score": [None, 0, 1.5, float("inf"), "nan"],
       "source": ["live", "LIVE", 1], "run_id": ["", "\u2028", 1, None], "victim_signature": ["\n", []]}


def test_what_the_one_pass_decoder_takes_check_rows_takes_with_the_same_values(decoder):
    """Random rows of edge values: the fast pass accepts a subset of what check_rows accepts."""
    rng = random.Random(5)
    taken = 0
    for _ in range(400):
        r = _full() if rng.random() < 0.5 else _short()
        for name in rng.sample(list(ODD), rng.randrange(1, 4)):
            r[name] = rng.choice(ODD[name])
        if rng.random() < 0.2:
            r["opportunity_id"] = str(uuid.uuid4()).upper()
        body = json.dumps([r]).encode()
        got = decode_rows(body)
        try:
            want = check_batch(body).rows
        except RowError:
            assert got is None, r
            continue
        if got is not None:
            taken += 1
            assert [_values(_dict(x)) for x in got] == [_values(x) for x in want], r
            assert [_values(x) for x in row_dicts(posted_items(got))] == [_values(x) for x in want], r
    assert taken > 50


class _ParserRefused:
    """In place of msgspec's JSON decoders: the test fails if any data reaches them."""

    def decode(self, data):
        raise AssertionError(f"{len(data)} bytes reached msgspec's parser")

    decode_lines = decode


def _huge_rows(n: int) -> list[dict]:
    """Rows whose floats are 1e289 and more: msgspec's slow exact parse."""
    floats = [name for name in NAMES if name.startswith("f_")]
    huge = dict(zip(floats, cycle([1e300, -1.7976931348623157e308, 1e289])))
    return [_full(**huge, profit=1e300) for _ in range(n)]


class _CountedDecoder:
    """msgspec's decoder, its calls counted."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def decode(self, data):
        self.calls += 1
        return self.real.decode(data)


def test_a_slow_pass_sends_the_next_bodies_and_pieces_to_orjson(monkeypatch, caplog):
    """Every pass counted slow (thresholds below any CPU time): a large body's first piece goes through
    msgspec's parser, every later piece and the next body through orjson's, with check_batch's values."""
    random.seed(6)
    monkeypatch.setattr(posted_json, "SLOW_MIN_NS", 0)
    monkeypatch.setattr(posted_json, "SLOW_NS_PER_KIB", -1)
    counted = _CountedDecoder(posted_json._DECODER)
    monkeypatch.setattr(posted_json, "_DECODER", counted)
    body = orjson.dumps(_huge_rows(40))
    assert len(body) > 2 * posted_json.PIECE_BYTES
    got = decode_rows(body)
    want = check_batch(body).rows
    assert [_values(_dict(r)) for r in got] == [_values(r) for r in want]
    assert [_values(r) for r in row_dicts(posted_items(got))] == [_values(r) for r in want]
    assert counted.calls == 1 and "parsed by orjson first" in caplog.text
    monkeypatch.setattr(posted_json, "_DECODER", _ParserRefused())
    again = orjson.dumps([_full(), _short()])
    assert [_values(_dict(r)) for r in decode_rows(again)] == [_values(r) for r in check_batch(again).rows]


def test_a_conform_error_is_a_refusal_of_that_request_only():
    """A StoreError from the table's conversion reaches the request as its 422, like check_batch's."""
    group = check_group([(orjson.dumps([_short()]), False), (b"\x00not arrow", True)])
    assert group.spans[0] == (0, 1)
    assert isinstance(group.spans[1], (RowError, StoreError))


def test_dict_items_and_posted_items_keep_each_rows_json_even_when_strings_hold_the_separator():
    random.seed(3)
    tricky = ['},{"timestamp_ns":1', '"}', '\\', '},{', "ü\u2028", '{"a":1}']
    dicts = [_full(run_id=s, victim_signature=s[::-1]) for s in tricky] + [_full()]
    assert dict_items(dicts) == [orjson.dumps(r) for r in dicts]
    assert dict_items(dicts[:1]) == [orjson.dumps(dicts[0])]
    assert dict_items([]) == []
    rows = check_group([(orjson.dumps(dicts), False)]).rows
    assert [_values(r) for r in row_dicts(posted_items(rows))] == [_values(_dict(r)) for r in rows]
    assert [list(r) for r in row_dicts(posted_items(rows))] == [list(NAMES)] * len(rows)
    assert posted_items([]) == []


def test_posted_items_differ_from_orjson_only_in_a_positive_exponents_sign():
    """msgspec writes 1e16 where orjson writes 1e+16: the same value, the same text otherwise."""
    random.seed(8)
    dicts = [_full(profit=v, score=v) for v in (1e16, 1.5e300, 2.0**70, 0.1, -1e-300, 123.0, 5e-324)]
    rows = check_group([(orjson.dumps(dicts), False)]).rows
    for item, d in zip(posted_items(rows), dicts):
        want = orjson.dumps(d)
        assert item == want.replace(b"e+", b"e")        # (no string of these rows holds "e+")
        assert orjson.loads(item) == orjson.loads(want)


def test_seen_ids_agree_with_a_python_set():
    """Random ids, and runs of ids that share their first 64 bits, some of them added twice: the
    set answers as a Python set does, through adds and growths."""
    rnd = random.Random(4)
    ids = [str(uuid.UUID(int=rnd.getrandbits(128))) for _ in range(2400)]
    heads = [rnd.getrandbits(64) for _ in range(30)]
    ids += [str(uuid.UUID(int=rnd.choice(heads) << 64 | rnd.getrandbits(64))) for _ in range(600)]
    rnd.shuffle(ids)
    ids += rnd.sample(ids, 40)
    start = set(ids[:500])
    seen, twin = SeenIds(id_array(sorted(start))), set(start)
    for k in range(500, len(ids), 37):
        chunk = ids[k:k + 37]
        seen.add(id_array(chunk), grow=bool(k % 3))
        twin.update(chunk)
        probe = rnd.sample(ids, 50) + [str(uuid.uuid4()) for _ in range(5)] + \
            [str(uuid.UUID(int=rnd.choice(heads) << 64 | rnd.getrandbits(64))) for _ in range(5)]
        assert seen.contains(id_array(probe)).tolist() == [p in twin for p in probe]
    assert SeenIds().contains(id_array(ids[:3])).tolist() == [False] * 3
    assert SeenIds(id_array([])).contains(np.zeros(0, "S36")).tolist() == []


def test_seen_ids_grow_on_another_thread_while_ids_are_added_and_looked_up():
    """The table grows (``grow``) on one thread while another adds and looks up: ids that share all
    but their last digits (a load test's counter), the nil id; every answer is a Python set's."""
    import threading

    from workbench.api import seen_ids as S

    ids = [f"{7:08x}-{t:04x}-4000-8000-{c:012x}" for t in range(3) for c in range(12_000)]
    ids.append("00000000-0000-0000-0000-000000000000")
    random.Random(6).shuffle(ids)
    seen, twin = S.SeenIds(id_array(ids[:100])), set(ids[:100])
    stop = threading.Event()

    def grow():
        while not stop.is_set():
            seen.grow()

    t = threading.Thread(target=grow)
    t.start()
    try:
        slots = {len(seen._tab)}
        for k in range(100, len(ids), 250):
            chunk = ids[k:k + 250]
            probe = ids[max(0, k - 300):k + 300]
            assert seen.contains(id_array(probe)).tolist() == [p in twin for p in probe]
            seen.add(id_array(chunk), grow=False)
            twin.update(chunk)
            slots.add(len(seen._tab))
    finally:
        stop.set()
        t.join()
    assert seen.contains(id_array(ids)).all() and len(seen) == len(ids)
    assert len(slots) >= 3                      # it grew, more than once
    assert not seen.contains(id_array([f"{7:08x}-{3:04x}-4000-8000-{1:012x}"])).any()


def test_sorted_keys_agree_with_a_sorted_list_through_adds_drops_and_scans():
    """api/sorted_keys.py against its twin, a plain sorted list: interleaved adds (one time, ids
    from two writers, as a load test posts), evictions, and scans from any start. Keys carry a
    third item, as the GET memory's do (the row's entry); a scan starts at a (time, id)."""
    from workbench.api import sorted_keys as SK
    from itertools import count

    rnd = random.Random(5)
    keys, twin = SK.SortedKeys(), []
    entry = count(10**9, -1)            # (entries that fall as keys rise: an order they must never decide)
    for step in range(300):
        t = T0 + rnd.choice([0, 0, 0, rnd.randrange(10**6)])       # mostly one time: ids interleave
        fresh = {(t, f"{rnd.randrange(4):04d}-{rnd.randrange(10**6):07d}") for _ in range(rnd.randrange(1, 900))}
        new = sorted((*k, next(entry)) for k in fresh - {k[:2] for k in twin})
        before = keys
        keys = keys.add(new)
        twin = sorted(twin + new)
        assert list(before) != twin or not new                      # the old one is unchanged by add
        if len(twin) > 5_000:
            keys, gone = keys.drop_first(len(twin) - 5_000)
            assert gone == twin[:len(twin) - 5_000]
            twin = twin[len(twin) - 5_000:]
        assert len(keys) == len(twin) and keys.last() == twin[-1]
        assert keys.maxes == [c[-1] for c in keys.chunks]       # (kept by add and drop_first, not walked)
        assert all(len(c) <= SK.CHUNK and type(c) is tuple for c in keys.chunks)
        if step % 10 == 0:
            assert list(keys) == twin
            for start in [k[:2] for k in rnd.sample(twin, 3)] + [(T0 - 1, ""), (T0, "0002"), (T0 + 10**7, "")]:
                for inclusive in (True, False):
                    want = [k for k in twin if (k[:2] >= start if inclusive else k[:2] > start)]
                    assert list(islice(keys.iter_from(start, inclusive), 50)) == want[:50]
            assert list(islice(keys.iter_from(None), 7)) == twin[:7]
    assert list(SK.SortedKeys().iter_from(None)) == [] and SK.SortedKeys().last() is None
    gc.collect()            # keys and their chunks are tuples of atoms: a full collection no longer walks them
    assert not any(map(gc.is_tracked, keys.chunks))


def test_an_embedded_stores_ids_are_read_once_then_kept_by_posts_and_the_engine_run(tmp_path):
    """store_access.py with seen_ids.py: ids stored before the first post, posted ones, and ones the
    engine run writes (note_stored) all count as duplicates; the group's own repeats too."""
    import pyarrow as pa

    from workbench.api.store_access import StoreAccess

    store = StoreAccess(f"chdb://{tmp_path / 'db'}")
    try:
        before = [_short() for _ in range(3)]
        store.writer.insert_arrow("mev_opportunities", store_table(check_group([(orjson.dumps(before), False)]).rows))
        engine = str(uuid.uuid4())
        fresh = [_short() for _ in range(2)]
        g = check_group([(orjson.dumps(before[:1] + fresh), False), (orjson.dumps(fresh[1:]), False)])
        assert store.insert_group(g).tolist() == [False, True, True, False]      # stored before; fresh; repeat
        store.note_stored(pa.chunked_array([pa.array([engine])]))                 # the run wrote this one
        g = check_group([(orjson.dumps([_short(opportunity_id=engine), fresh[0], _short()]), False)])
        assert store.insert_group(g).tolist() == [False, False, True]
        store.wait_posts_inserted()             # (posted rows are inserted in the background: post_spool.py)
        assert store.count_opportunities() == 3 + 2 + 1
    finally:
        store.close()


def test_empty_posts_first_to_a_fresh_store_insert_nothing_and_fail_nothing(tmp_path):
    """A group of empty posts ([] and {"rows": []}) before any other: the id set is not read yet, and
    noting the group's no ids in it failed every post of the group with 500."""
    from workbench.api.store_access import StoreAccess

    store = StoreAccess(f"chdb://{tmp_path / 'db'}")
    try:
        assert store.insert_group(check_group([(b"[]", False), (b'{"rows": []}', False)])).tolist() == []
        assert not store.ids_loaded
        row = _short()
        assert store.insert_group(check_group([(orjson.dumps([row]), False), (b"[]", False)])).tolist() == [True]
        assert store.insert_group(check_group([(b"[]", False)])).tolist() == []
        assert store.insert_group(check_group([(orjson.dumps([row]), False)])).tolist() == [False]
        store.wait_posts_inserted()
        assert store.count_opportunities() == 1
    finally:
        store.close()


@pytest.mark.parametrize("one_time", [True, False], ids=["one time", "rising times"])
def test_posted_groups_enter_memory_and_the_index_in_key_order(one_time):
    """posted_rows.py made on the worker, taken in by the GET memory and the sequence index: the
    keys in order whether every row carries one time (the memory's merge path) or each its own
    rising time (its append path), items of the rows' values, ids as 16 bytes equal to the
    text's, eviction past the capacity, and ids memory holds left out; a page's dicts made from the
    rows' JSON."""
    import pyarrow as pa

    from workbench.api.post_columns import RULES
    from workbench.api.posted_rows import posted_rows
    from workbench.api.recent import RecentOpportunities
    from workbench.api.seq_index import SeqIndex
    from workbench.api.store_access import OpportunityFilter

    random.seed(11)
    mem = RecentOpportunities(pa.schema([(r.name, r.arrow) for r in RULES]), None, capacity=50)
    idx, want, ids, t = SeqIndex(), [], [], T0
    for _ in range(8):
        rows = []
        for _ in range(7):
            t += 0 if one_time else random.randrange(1, 1000)
            rows.append(_full(timestamp_ns=t))
        group = check_group([(orjson.dumps(rows), False)])
        p = posted_rows(group)
        assert [_values(r) for r in row_dicts(p.items)] == [_values(check_batch(orjson.dumps([r])).rows[0]) for r in rows]
        assert p.times == [r["timestamp_ns"] for r in rows] and p.ids == [r["opportunity_id"] for r in rows]
        assert p.types == {"sandwich": 7} and p.times_ns.tolist() == [r["timestamp_ns"] for r in rows]
        assert mem.add_posted(p.items, p.ids, p.times, row_dicts) == 7
        idx.append(p.times_ns, p.id_bytes, engine=False)
        want += zip(p.times, p.ids)
        ids += p.ids
    want = sorted(want)[-50:]
    assert [k[:2] for k in mem.keys] == want and len(mem.rows) == 50
    page, more = mem.page_from_memory(OpportunityFilter([]), 10, None)
    assert [k for k, _ in page] == want[:10] and more
    for k, (d, b) in page:                  # a page's dict is its JSON's (nan for null), list columns as tuples
        assert (d, b) == mem.row(k[1]) and type(d["pools"]) is tuple
        assert _values(d) == _values(row_dicts([b])[0]) and orjson.loads(orjson.dumps(d)) == orjson.loads(b)
    assert idx.ids(0, idx.n) == ids and idx.n == 56
    gone = [i for i in p.ids if i not in mem.rows]                        # (one time: may be evicted by smaller ids)
    assert mem.add_posted(p.items, p.ids, p.times, row_dicts) == len(gone)  # the ids held: left out
    at = next(i for i, oid in enumerate(p.ids) if oid in mem.rows)
    g = check_group([(orjson.dumps([_full(timestamp_ns=t + 1), _full(timestamp_ns=t + 2)]), False)])
    fresh = posted_rows(g)
    both = posted_rows(joined_groups([group.kept(np.arange(len(group.ids)) == at), g]))
    assert mem.add_posted(both.items, both.ids, both.times, row_dicts) == 2  # the held one left out
    assert [k[:2] for k in mem.keys][-2:] == sorted(zip(fresh.times, fresh.ids)) and len(mem.keys) == 50
    g = check_group([(orjson.dumps([_full(timestamp_ns=t + 3)]), False)])
    known = posted_rows(g)
    assert mem.add_posted(known.items, known.ids, known.times, row_dicts) == 1
    assert mem.row(known.ids[0])[1] == known.items[0] and len(mem.keys) == 50
    gc.collect()            # a posted batch held is one object the collector walks: its JSON is not tracked
    assert not gc.is_tracked(mem._batches[max(mem._batches)]._json)


def test_queued_posts_enter_memory_together_before_any_read():
    """recent.py ``queue_posted``: groups wait and go in together, at the first read of memory (a page,
    a GET by id, an engine batch) or past SETTLE_ROWS; the data version moves when a group is queued
    and not again when the queue is taken in, so a page made after the read stays cached."""
    import pyarrow as pa

    from workbench.api import recent as R
    from workbench.api.post_columns import RULES
    from workbench.api.posted_rows import posted_rows
    from workbench.api.store_access import OpportunityFilter

    random.seed(13)
    mem = R.RecentOpportunities(pa.schema([(r.name, r.arrow) for r in RULES]), None, capacity=40)
    twin = R.RecentOpportunities(mem.schema, None, capacity=40)       # the same groups added one by one
    t, groups = T0, []
    for _ in range(9):
        rows = []
        for _ in range(5):
            t += random.randrange(1, 1000)
            rows.append(_full(timestamp_ns=t))
        g = check_group([(orjson.dumps(rows), False)])
        groups.append(posted_rows(g))
    f = OpportunityFilter([])
    for k, p in enumerate(groups):
        version = mem.version
        mem.queue_posted(p.items, p.ids, p.times)
        twin.add_posted(p.items, p.ids, p.times, row_dicts)
        assert mem.version == version + 1 and len(mem.keys) == 0      # waiting, pages cached before it stale
    version = mem.version
    assert mem.covers(f, None) == twin.covers(f, None) and mem.version == version     # the read takes the queue in
    assert list(mem.keys) != [] and [k[:2] for k in mem.keys] == [k[:2] for k in twin.keys]
    assert mem.page_from_memory(f, 50, None) == twin.page_from_memory(f, 50, None)
    assert mem.cover == twin.cover and len(mem) == 40 and len(mem.rows) == 40
    page = mem.page_from_memory(f, 10, None)
    mem.remember("page", page, mem.version)
    assert mem.cached("page") == page                               # (not dropped by the settle)
    # a GET by id reads the queue in as well; past SETTLE_ROWS it goes in unread
    g = check_group([(orjson.dumps([_full(timestamp_ns=t + 1)]), False)])
    one = posted_rows(g)
    mem.queue_posted(one.items, one.ids, one.times)
    assert mem.cached("page") is None and mem.row(one.ids[0])[1] == one.items[0]
    big = check_group([(orjson.dumps([_full(timestamp_ns=t + 2 + j) for j in range(R.SETTLE_ROWS)]), False)])
    many = posted_rows(big)
    mem.queue_posted(many.items, many.ids, many.times)
    assert not mem._queued and [k[1] for k in mem.keys][-40:] == many.ids[-40:]


def test_a_post_log_is_read_in_one_pass_unless_a_line_fails(decoder):
    """posted_json.decode_log: a log's lines as rows with check_batch's values; a line cut short,
    a UInt64 past its top or a bad value make it give up (post_spool.read_log then goes line by
    line, naming the line)."""
    from workbench.api.posted_json import decode_log

    random.seed(12)
    rows = [_full(), _short(), _full(score=0.25)]
    lines = [orjson.dumps(r) for r in rows]
    got = decode_log(b"\n".join(lines) + b"\n")
    assert [_values(_dict(r)) for r in got] == [_values(r) for r in check_batch(orjson.dumps(rows)).rows]
    assert decode_log(b"") == []
    assert decode_log(b"\n".join(lines) + b"\n" + lines[0][:40]) is None
    assert decode_log(json.dumps(_full(amount_in=2**64)).encode()) is None
    assert decode_log(orjson.dumps(_full(type="frontrun"))) is None
    assert decode_log(b"\n".join(lines) + b"\n{}\n") is None


def test_a_large_post_log_of_huge_floats_is_parsed_by_orjson(monkeypatch):
    from workbench.api.posted_json import decode_log

    random.seed(13)
    rows = _huge_rows(40)
    data = b"\n".join(orjson.dumps(r) for r in rows) + b"\n"
    assert len(data) > posted_json.PIECE_BYTES
    monkeypatch.setattr(posted_json, "_LINES", _ParserRefused())
    got = decode_log(data)
    assert [_values(_dict(r)) for r in got] == [_values(r) for r in check_batch(orjson.dumps(rows)).rows]
    assert decode_log(data + orjson.dumps(rows[0])[:40]) is None        # a line cut short