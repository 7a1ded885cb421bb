"""The jitted scan of a posted JSON body (api/posted_scan.py) against msgspec's pass (posted_json.py):
what the scan takes, msgspec's pass takes with the same values (its lines are the rows' JSON, their
ids, times and types the rows'), and what it hands back is a body msgspec's pass, or check_rows,
decides; byte by byte edits of real bodies (hypothesis) hold it to that."""

from __future__ import annotations

import json
import random
import uuid

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.api import posted_json
from workbench.api.opportunity_rows import BATCH_ROWS_MAX
from workbench.api.post_columns import NAMES, check_group
from workbench.api.posted_json import decode_rows, posted_items, row_dicts
from workbench.api.posted_scan import scan

pytestmark = pytest.mark.timeout(300)

T0 = 1_796_000_000_000_000_000          # 19 digits, as a time in ns has


@pytest.fixture(autouse=True)
def _no_window(monkeypatch):
    monkeypatch.setattr(posted_json, "parsed_first_until", 0.0)


def _row(**over) -> dict:
    """A row as the engine writes one: every column, floats and integers of their usual sizes."""
    r = {"timestamp_ns": T0 + random.randrange(10**9), "opportunity_id": str(uuid.uuid4()), "type": "sandwich",
         "profit": 1.210770785, "pools": ["6DB4LJVupwGmiLCveSmAGJLXy3oaQLZRneDq7BearUhW"],
         "run_id": str(uuid.uuid4()), "slot": -1, "victim_signature": "2EBHDgg9Wp" * 8, "score": None,
         "expected_profit_lamports": 1210770785, "tip_lamports": 10000, "detect_latency_ns": 1637,
         "source": "replay", "packet_index": 382, "tx_index": 374, "trigger_signature": "4" * 87,
         "amount_in": 107563860072, "amount_out": 108774640857, "profit_quote": 1210780785,
         "profit_mint": "So11111111111111111111111111111111111111112", "position_id": -1}
    for n in NAMES:
        if n.startswith("f_"):
            r[n] = random.choice([None, 0.5, 4002.79188246, 486.0, -1e-7, 1e100])
    r.update(over)
    return r


def _values(items: list[bytes]) -> list[dict]:
    return [orjson.loads(i) for i in items]


def _same_as_msgspec(body: bytes) -> bool:
    """Whether the scan took ``body``; if it did, msgspec's pass takes it with the same values."""
    got = scan(body)
    if got is None:
        return False
    rows = decode_rows(body)
    assert rows is not None, body
    assert _values(got.items) == _values(posted_items(rows))
    assert got.ids == [r.opportunity_id for r in rows]
    assert got.times == [r.timestamp_ns for r in rows]
    assert got.types == [r.type for r in rows]
    assert [list(i) for i in map(orjson.loads, got.items)] == [list(NAMES)] * len(rows)       # the table's keys, in order
    return True


def test_a_body_as_the_engine_writes_it_is_scanned_to_msgspecs_own_lines():
    # (floats that orjson and msgspec write alike: orjson writes 1e100 as 1e+100, the same number)
    rows = [_row(**{n: random.choice([None, 0.5, 4002.79188246, 486.0, -1e-7]) for n in NAMES if n.startswith("f_")})
            for _ in range(10)]
    body = orjson.dumps(rows)
    got = scan(body)
    assert got is not None and got.items == posted_items(decode_rows(body))          # byte for byte
    assert got.ids == [r["opportunity_id"] for r in rows] and got.times == [r["timestamp_ns"] for r in rows]
    assert got.types == ["sandwich"] * 10


@pytest.mark.parametrize("form", ["indented", "wrapped", "keys reversed", "required only", "empty",
                                  "wrapped empty", "spaced lists"])
def test_other_forms_of_the_same_rows_are_scanned_with_msgspecs_values(form):
    rows = [_row(type=t) for t in ("arbitrage", "sandwich", "liquidation")]
    if form == "indented":
        body = json.dumps(rows, indent=2).encode()
    elif form == "wrapped":
        body = b' {"rows" : %s}\n' % orjson.dumps(rows)
    elif form == "keys reversed":
        body = orjson.dumps([dict(reversed(list(r.items()))) for r in rows])
    elif form == "required only":
        body = orjson.dumps([{k: r[k] for k in NAMES[:5]} for r in rows])
    elif form == "empty":
        body = b" [ ] "
    elif form == "wrapped empty":
        body = b'{"rows":[]}'
    else:
        body = orjson.dumps(rows).replace(b'["', b'[ "').replace(b'"]', b'" ]')
        body = body.replace(b'"pools":[ "6DB', b'"pools": [ "a b" ,"6DB')
    assert _same_as_msgspec(body)


def test_a_float_posted_as_an_integer_is_written_as_a_float():
    body = b'[{"timestamp_ns":%d,"opportunity_id":"%s","type":"arbitrage","profit":3,"pools":[],' \
           b'"f_tx_size":-0,"score":1E5,"f_type":1.50}]' % (T0, str(uuid.uuid4()).encode())
    got = scan(body)
    line = got.items[0]
    assert b'"profit":3.0,' in line and b'"f_tx_size":-0.0,' in line and b'"score":1E5,' in line
    assert _same_as_msgspec(body)
    d = row_dicts(got.items)[0]
    assert type(d["profit"]) is float and d["score"] == 1e5 and d["f_type"] == 1.5


@pytest.mark.parametrize("field, value", [
    ("opportunity_id", "ABCDEF01-0000-4000-8000-000000000000"),    # upper case: check_rows takes it, canonical
    ("opportunity_id", "{f5f3e595-9051-4a3b-9d20-d57eeb833d0e}"),
    ("run_id", "caf\u00e9"),                                        # not ASCII
    ("run_id", 'a"b'),                                              # an escape
    ("profit", 1e300),                                              # past msgspec's fast path
    ("amount_in", 2**64 - 1),                                       # past int64
    ("slot", -(2**63)),
    ("type", "Sandwich"),
    ("source", "elsewhere"),
    ("slot", 1.0),
    ("slot", "1"),
    ("timestamp_ns", -1),
    ("timestamp_ns", 2**63),
    ("profit", None),
    ("pools", "p"),
    ("pools", [1]),
    ("unknown_field", 1),
])
def test_what_the_scan_leaves_msgspecs_pass_and_check_rows_decide_as_before(field, value, monkeypatch):
    body = orjson.dumps([_row(), _row(**{field: value})])
    assert scan(body) is None
    with_scan = check_group([(body, False)])
    monkeypatch.setattr("workbench.api.post_columns.scan", lambda b: None)
    without = check_group([(body, False)])
    assert repr(with_scan.spans) == repr(without.spans) and with_scan.items == without.items


@pytest.mark.parametrize("body", [
    b'', b'[', b'[{}', b'[{"timestamp_ns":1}]', b'{"rows":[],"more":1}', b'[]x', b'[,]', b'[{},]',
    b'{"row":[]}', b'[[]]', b'null', b'[null]',
])
def test_bodies_outside_the_subset_are_handed_back(body):
    assert scan(body) is None


def test_a_key_twice_an_id_twice_and_a_bad_number_are_handed_back():
    r = _row()
    line = orjson.dumps(r)
    assert scan(b"[" + line[:-1] + b',"slot":5}]') is None                        # a key twice
    assert scan(b"[%s,%s]" % (line, line)) is None                                # an id twice
    for bad in (b"01", b"1.", b".5", b"1e", b"-", b"+1", b"1e99999", b"NaN", b"Infinity"):
        assert scan(line.replace(b'"tip_lamports":10000', b'"tip_lamports":' + bad).join((b"[", b"]"))) is None
        assert scan(line.replace(b'"profit":1.210770785', b'"profit":' + bad).join((b"[", b"]"))) is None


def test_more_rows_than_a_batch_takes_are_handed_back():
    row = orjson.dumps({k: v for k, v in _row().items() if k in NAMES[:5]})
    rows = [row.replace(row[row.index(b'"opportunity_id":"') + 18:][:36], str(uuid.uuid4()).encode())
            for _ in range(BATCH_ROWS_MAX + 1)]
    assert scan(b"[%s]" % b",".join(rows[:-1])) is not None
    assert scan(b"[%s]" % b",".join(rows)) is None


_SIGNIFICANT = b'{}[]:,"\\ 0123456789.-+eE\tnul\xc3\xa9x'


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_byte_edits_of_a_real_body_never_make_the_scan_take_what_msgspec_would_not(data):
    rows = [_row() for _ in range(data.draw(st.integers(1, 3)))]
    body = bytearray(data.draw(st.sampled_from([orjson.dumps(rows), json.dumps(rows, indent=1).encode(),
                                                 orjson.dumps({"rows": rows})])))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body) - 1))
        how = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = data.draw(st.sampled_from(list(_SIGNIFICANT)))
        if how == "replace":
            body[at] = byte
        elif how == "insert":
            body.insert(at, byte)
        else:
            del body[at]
    _same_as_msgspec(bytes(body))


def test_a_group_of_scanned_and_decoded_bodies_gives_the_stores_rows_of_both():
    scanned, huge = [_row() for _ in range(3)], [_row(profit=1e300)]       # 1e300: msgspec's pass
    group = check_group([(orjson.dumps(scanned), False), (orjson.dumps(huge), False)])
    assert group.made[:3] == [None] * 3 and group.made[3] is not None      # the pass's row kept as it made it
    kept_row = group.made[3]
    rows = group.rows
    assert rows[3] is kept_row
    assert [r.opportunity_id for r in rows] == [r["opportunity_id"] for r in scanned + huge]
    assert list(map(msgspec.to_builtins, rows)) == list(map(msgspec.to_builtins, decode_rows(orjson.dumps(scanned + huge))))
