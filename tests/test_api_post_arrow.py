"""Arrow bodies checked in one pass (api/posted_arrow.py) against the value-by-value twin
(``check_arrow_batch``): what the pass takes, the twin takes with the same values; what it refuses
(a bad value, a column type it leaves alone) the twin decides, and a group's answer is the twin's
(the same 422 row, field and message); GET's Arrow shape (times as timestamps, dictionary labels,
several record batches) takes the pass."""

from __future__ import annotations

import decimal
import math
import random
import struct
import uuid

import orjson
import pyarrow as pa
import pytest

from byte_damage import damaged
from test_api_post_columns import BAD_ROWS, ODD, _dict, _full, _short, _values
from test_api_units import _arrow
from workbench.api import posted_arrow
from workbench.api.opportunity_rows import RowError, check_arrow_batch, json_shaped, read_arrow_stream
from workbench.api.post_columns import RULES, check_group
from workbench.api.posted_arrow import decode_arrow
from workbench.api.posted_json import posted_items, row_dicts

pytestmark = pytest.mark.timeout(120)

_TYPES = {r.name: r.arrow for r in RULES}       # each field's Arrow type in the JSON shape


@pytest.fixture(params=["by columns", "by columns, a row a piece", "converted", "converted, a row a piece"])
def pieces(request, monkeypatch):
    """Each way an Arrow body takes to its rows: column by column (``by_columns``, first), or
    converted by msgspec (where the columns' types are not GET's), in one piece or a row a piece."""
    if "a row a piece" in request.param:
        monkeypatch.setattr(posted_arrow, "PIECE_ROWS", 1)
        monkeypatch.setattr(posted_arrow, "COLUMN_PIECE_ROWS", 1)
    if request.param.startswith("converted"):
        monkeypatch.setattr(posted_arrow, "by_columns", lambda table, types: None)
    return request.param


def _by_columns(body: bytes, by_columns=posted_arrow.by_columns) -> list | None:
    """The body's rows column by column, or None (whichever way the test's ``pieces`` sends bodies)."""
    table = json_shaped(read_arrow_stream(body))
    return by_columns(table, table.schema.types)


def _table(rows: list[dict], types: dict | None = None) -> pa.Table | None:
    """``rows`` as columns (a key some rows lack is null there), each of its field's type where its
    values fit it (``types`` first, then the JSON shape's), else of the type Arrow infers; None when
    a column fits no type."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    cols = []
    for name in names:
        values = [r.get(name) for r in rows]
        for t in ((types or {}).get(name), _TYPES.get(name), None):
            try:
                col = pa.array(values, t)
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                continue
            # the values themselves (not a string taken as a list of its characters; NaN is NaN)
            if all(a == b or a != a and b != b for a, b in zip(col.to_pylist(), values)):
                cols.append(col)
                break
        else:
            return None
    return pa.Table.from_arrays(cols, names=names)


def _same_as_the_twin(got: list, body: bytes) -> None:
    want = check_arrow_batch(body).rows
    assert [_values(_dict(r)) for r in got] == [_values(r) for r in want]
    assert [list(_dict(r)) for r in got] == [list(r) for r in want]      # key order too
    assert [_values(r) for r in row_dicts(posted_items(got))] == [_values(r) for r in want]


def test_gets_shape_and_the_usual_forms_take_the_one_pass_with_the_twins_values(pieces):
    random.seed(11)
    full = [_full() for _ in range(5)]
    shapes = {
        "every column": _table(full),
        "required columns only": _table([_short(), _short()]),
        "times as timestamps, labels as a dictionary": _table(full).set_column(
            0, "timestamp_ns", pa.array([r["timestamp_ns"] for r in full], pa.timestamp("ns"))).set_column(
            2, "type", pa.array([r["type"] for r in full]).dictionary_encode()),
        "large strings, columns in another order": _table(full, {"opportunity_id": pa.large_string(),
                                                                "pools": pa.large_list(pa.large_string())}
                                                          ).select(list(reversed(list(full[0])))),
        "a time in µs": _table([_short(timestamp_ns=1_750_000_000_000_001_000)]).set_column(
            0, "timestamp_ns", pa.array([1_750_000_000_000_001], pa.timestamp("us"))),
    }
    for what, table in shapes.items():
        for chunk in (None, 2):
            body = _arrow(table, chunk)
            got = decode_arrow(body)
            assert got is not None, what
            _same_as_the_twin(got, body)
            if pieces.startswith("by columns"):     # every shape here is GET's types: none falls through
                assert _by_columns(body) is not None, what
    body = _arrow(shapes["every column"])
    group = check_group([(orjson.dumps(full), False), (body, True)])      # the same rows as JSON and as Arrow
    assert group.spans == [(0, 5), (5, 10)] and group.items[:5] == group.items[5:]


# the JSON tests' bad values that an Arrow column can hold beside good ones, and floats only Arrow can carry
# (a row's JSON in the post log and on the WebSocket would make them null)
ARROW_BAD = [(f, v) for f, v in BAD_ROWS if _table([_full(), _full(**{f: v})]) is not None] + [
    ("profit", math.inf), ("profit", math.nan), ("score", -math.inf), ("f_tx_size", math.inf)]


@pytest.mark.parametrize("field, value", ARROW_BAD, ids=[f"{f}={v!r}" for f, v in ARROW_BAD])
def test_every_bad_row_arrow_can_carry_is_left_to_the_twin_and_answered_as_it_refuses(field, value, pieces):
    random.seed(12)
    body = _arrow(_table([_full(), _full(), _full(**{field: value}), _full()]))
    assert decode_arrow(body) is None
    with pytest.raises(RowError) as want:
        check_arrow_batch(body)
    good = _arrow(_table([_full()]))
    group = check_group([(good, True), (body, True), (good, True)])
    got = group.spans[1]
    assert isinstance(got, RowError) and got.as_dict() == want.value.as_dict()
    assert group.spans[0] == (0, 1) and group.spans[2] == (1, 2)     # (the same id twice in a group: the insert decides)


@pytest.mark.parametrize("field, column, fast", [
    ("profit", pa.array([decimal.Decimal("1.5")] * 2), False),     # msgspec would take a decimal for a float
    ("slot", pa.array([True, False]), False),
    ("run_id", pa.array([b"r1", b"r2"]), False),
    ("pools", pa.array([[], []]), True),                            # list<null>: empty lists
], ids=["decimal", "bool", "binary", "empty lists"])
def test_a_column_of_another_type_goes_to_the_twin(field, column, fast, pieces):
    random.seed(13)
    table = _table([_full(), _full()])
    body = _arrow(table.set_column(table.column_names.index(field), field, column))
    assert (decode_arrow(body) is not None) == fast
    assert _by_columns(body) is None                                # not GET's types: the conversion decides
    group = check_group([(body, True)])
    try:
        want = check_arrow_batch(body)
    except RowError as e:
        assert isinstance(group.spans[0], RowError) and group.spans[0].as_dict() == e.as_dict()
        return
    assert group.spans == [(0, 2)] and group.ids == want.ids
    _same_as_the_twin(group.rows, body)


def _ids_that_join_as_canonical() -> tuple[str, str]:
    """Two ids of 35 and 37 characters whose text, read as one, is two canonical UUIDs."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    return a[:-1], a[-1] + b


# values the column checks leave to the twin that GET's types carry as well as odd ones: a wider integer
# type's value past the field's range, a null in a column with a default, ids read as one text, an
# id in a form the twin takes (upper case)
BY_COLUMNS_LEAVE = {
    "amount_in -1 (int64 for uint64)": ([_full(amount_in=5), _full(amount_in=-1)], {}),
    "slot 2**63 (uint64 for int64)": ([_full(), _full(slot=2**63)], {"slot": pa.uint64()}),
    "detect_latency_ns past int64": ([_full(detect_latency_ns=2**64 - 1)], {"detect_latency_ns": pa.uint64()}),
    "run_id null": ([_full(), _full(run_id=None)], {}),
    "an upper-case id": ([_full(opportunity_id=str(uuid.uuid4()).upper())], {}),
    "ids of 35 and 37 characters": ([_full(opportunity_id=i) for i in _ids_that_join_as_canonical()], {}),
    "an id twice": ([_full(opportunity_id="00000000-0000-4000-8000-000000000001")] * 2, {}),
    "pools with a null": ([_full(pools=["A", None])], {}),
}


@pytest.mark.parametrize("what", list(BY_COLUMNS_LEAVE))
def test_what_the_column_checks_leave_the_twin_decides(what, pieces):
    random.seed(15)
    rows, types = BY_COLUMNS_LEAVE[what]
    table = _table(rows, types)
    assert table is not None and table.num_rows == len(rows)
    body = _arrow(table)
    assert _by_columns(body) is None
    assert decode_arrow(body) is None
    group = check_group([(body, True)])
    try:
        want = check_arrow_batch(body)
    except RowError as e:
        assert isinstance(group.spans[0], RowError) and group.spans[0].as_dict() == e.as_dict()
    else:
        assert group.spans == [(0, len(rows))] and group.ids == want.ids
        _same_as_the_twin(group.rows, body)
    ok = _arrow(_table([_full()], types))
    assert _by_columns(ok) is not None                  # (the same column types with good values are taken)


def test_what_the_one_pass_takes_the_twin_takes_with_the_same_values(pieces):
    """Random rows of edge values in columns of every type Arrow gives them: a subset, same values."""
    rng = random.Random(14)
    taken = tried = by_columns = 0
    for _ in range(600):
        rows = [_full() if rng.random() < 0.5 else _short() for _ in range(rng.randrange(1, 4))]
        r = rows[-1]
        for name in rng.sample(list(ODD), rng.randrange(1, 4)):
            r[name] = rng.choice(ODD[name])
        if rng.random() < 0.2:
            r["opportunity_id"] = str(uuid.uuid4()).upper()
        table = _table(rows)
        if table is None:
            continue
        tried += 1
        body = _arrow(table)
        got = decode_arrow(body)
        try:
            check_arrow_batch(body)
        except RowError:
            assert got is None, rows
            continue
        if got is not None:
            taken += 1
            _same_as_the_twin(got, body)
            columns = _by_columns(body)
            if columns is not None:
                by_columns += 1
                assert posted_items(columns) == posted_items(got)
    assert tried > 300 and taken > 40 and by_columns > 20, (tried, taken, by_columns)


def test_text_that_is_not_utf8_is_a_422_naming_its_column_and_the_others_of_the_group_land():
    """The stream reader checks the buffers' bounds only: bytes that are not UTF-8 in a string
    column failed the whole group when the values were read."""
    random.seed(15)
    table = _table([_full(), _full()])
    at = table.column_names.index("run_id")
    body = _arrow(table.set_column(at, "run_id", pa.array([b"r1", b"\xff\xfe"], pa.binary()).view(pa.string())))
    with pytest.raises(RowError) as want:
        check_arrow_batch(body)
    assert want.value.field == "run_id" and "UTF8" in want.value.message
    group = check_group([(orjson.dumps([_short()]), False), (body, True), (_arrow(_table([_full()])), True)])
    assert group.spans[0] == (0, 1) and group.spans[2] == (1, 2)
    assert isinstance(group.spans[1], RowError) and group.spans[1].as_dict() == want.value.as_dict()


def test_mutated_arrow_bodies_are_refused_or_taken_never_a_failure_of_the_group():
    """Random bytes changed, cut or added in real Arrow bodies (bounded): each body gets its 422 or
    its rows; nothing escapes the group's check (that would be a 500 for every post of the group)."""
    rng = random.Random(16)
    random.seed(16)
    bodies = [_arrow(_table([_full() for _ in range(k)]), chunk) for k in (1, 3, 8) for chunk in (None, 2)]
    refused = 0
    for _ in range(1500):
        span = check_group([(damaged(rng.choice(bodies), rng), True)]).spans[0]
        refused += isinstance(span, RowError)
    assert refused > 500


def test_offsets_out_of_order_are_a_422_naming_the_column_not_a_crash():
    """A string column whose offsets point before its data: reading the values read astray (the
    scratch fuzz crashed the process with such a body), so the server died with every connection."""
    random.seed(17)
    table = _table([_full(), _full()])
    offsets = pa.py_buffer(struct.pack("<3i", 0, -1_395_458_048, 4))
    bad = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"abcd")])
    body = _arrow(table.set_column(table.column_names.index("victim_signature"), "victim_signature", bad))
    group = check_group([(body, True), (_arrow(_table([_full()])), True)])
    assert isinstance(group.spans[0], RowError) and group.spans[0].field == "victim_signature"
    assert "offset" in group.spans[0].message.lower() and group.spans[1] == (0, 1)
