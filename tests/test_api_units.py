"""workbench/api pieces without a server: posted rows against the table, the hub's sequence
numbers, resumes and gaps, the token and address rules, the cursor."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from workbench.api.hub import Hub
from workbench.api.opportunity_rows import RowError, check_batch
from workbench.api.security import Guard, is_loopback
from workbench.api.service import ServeOptions
from workbench.api.store_access import BadQuery, decode_cursor, encode_cursor
from workbench.errors import ConfigError
from workbench.store import schema as S

pytestmark = pytest.mark.timeout(60)


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
    out = []
    while not q.empty():
        out.append(q.get_nowait())
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
