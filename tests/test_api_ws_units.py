"""The WebSocket pieces without a server: the transactions channel's filters, shared frames and
bounded memory; where a subscription starts (a sequence, a time); the index of numbered
opportunities; the store part of a resume (frames and gaps in order); handed_ns per batch."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pyarrow as pa
import pytest

from workbench.api.hub import Channel, Hub
from workbench.api.resume import _queue_runs, parse_from
from workbench.api.seq_index import SeqIndex
from workbench.api.shared_frame import Shared
from workbench.api.tx_channel import FilterError, TxFilter
from workbench.wire.keys import program_address

pytestmark = pytest.mark.timeout(60)

RAY = program_address("raydium_amm_v4")
VOTE = program_address("vote")


def _txs(first_ts: int, fees: list[int], programs: list[list[str]]) -> pa.Table:
    n = len(fees)
    return pa.table({"tx_index": pa.array(range(first_ts, first_ts + n), pa.int64()),
                     "ts_ns": pa.array([first_ts * 1000 + i for i in range(n)], pa.int64()),
                     "priority_fee_lamports": pa.array(fees, pa.int64()),
                     "programs": pa.array(programs, pa.list_(pa.string()))})


def _payload(data) -> bytes | str:
    """A queued message's content: a shared frame's payload, or the text queued for one client."""
    return data.payload if isinstance(data, Shared) else data


def _drain(q) -> list:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


@pytest.mark.parametrize("raw, field", [
    ({"program": "no_such_program"}, "filter.program"),
    ({"program": "0OIl" * 11}, "filter.program"),               # not base58
    ({"program": "1" * 10}, "filter.program"),                  # base58, not 32 bytes
    ({"program": 7}, "filter.program"),
    ({"min_fee": -1}, "filter.min_fee"),
    ({"min_fee": 1.5}, "filter.min_fee"),
    ({"min_fee": True}, "filter.min_fee"),
    ({"colour": "red"}, "filter.colour"),
    ("raydium", "filter"),
])
def test_a_bad_filter_is_refused_naming_its_field(raw, field):
    with pytest.raises(FilterError) as e:
        TxFilter.parse(raw)
    assert e.value.field == field and field.split(".")[-1] in str(e.value)


def test_a_filter_takes_a_program_name_or_address_and_a_minimum_fee():
    assert TxFilter.parse({"program": "raydium_amm_v4"}) == TxFilter(RAY, None)
    assert TxFilter.parse({"program": RAY, "min_fee": 0}) == TxFilter(RAY, 0)
    assert TxFilter.parse({}) is None and TxFilter.parse(None) is None
    t = _txs(1, [0, 5000, 9000, 20000], [[RAY], [VOTE], [VOTE, RAY], []])
    assert TxFilter(RAY, None).select(t).tolist() == [0, 2]
    assert TxFilter(None, 5000).select(t).tolist() == [1, 2, 3]
    assert TxFilter(RAY, 5000).select(t).tolist() == [2]


def test_transactions_frames_are_encoded_once_per_filter_and_carry_the_channels_seqs():
    async def go():
        hub = Hub(queue_frames=100)
        a1, a2, b, everything = (hub.new_client() for _ in range(4))
        ray = TxFilter(RAY, None)
        for c in (a1, a2):
            hub.subscribe(c, ["transactions"], None, ray)
        hub.subscribe(b, ["transactions"], None, TxFilter(None, 10_000))
        hub.subscribe(everything, ["transactions"], None)
        hub.publish_transactions(_txs(1, [0, 5000, 9000, 20000], [[RAY], [VOTE], [VOTE, RAY], []]), 111)
        hub.publish_transactions(_txs(9, [50_000, 0], [[RAY], [VOTE]]), 222)
        fa1, fa2, fb, fe = (_drain(c.queue) for c in (a1, a2, b, everything))
        assert [f[3] for f in fa1] == [f[3] for f in fa2]
        assert all(x[3] is y[3] for x, y in zip(fa1, fa2))          # the same message object: encoded once
        ja = [orjson.loads(_payload(f[3])) for f in fa1]
        assert [j["seqs"] for j in ja] == [[0, 2], [4]]
        assert [(j["first_seq"], j["last_seq"], j["handed_ns"]) for j in ja] == [(0, 2, 111), (4, 4, 222)]
        assert [r["tx_index"] for j in ja for r in j["rows"]] == [1, 3, 9]
        assert [orjson.loads(_payload(f[3]))["seqs"] for f in fb] == [[3], [4]]
        je = [orjson.loads(_payload(f[3])) for f in fe]
        assert [(j["first_seq"], j["last_seq"]) for j in je] == [(0, 3), (4, 5)] and "seqs" not in je[0]
        assert hub.tx.next_seq == 6
    asyncio.run(go())


def test_transactions_memory_is_bounded_and_a_resume_filters_what_it_holds():
    async def go():
        hub = Hub(queue_frames=1000, tx_history_items=10)
        for k in range(10):
            hub.publish_transactions(_txs(10 * k, [k * 1000] * 4, [[RAY], [VOTE], [RAY], [VOTE]]), k)
        assert hub.tx.next_seq == 40
        held = sum(b.table.num_rows for b in hub.tx.history)
        assert 10 <= held < 10 + 4 and hub.tx.oldest_seq == 40 - held
        c = hub.new_client()
        hub.subscribe(c, ["transactions"], 0, TxFilter(RAY, 8000))
        frames = [orjson.loads(_payload(f[3])) for f in _drain(c.queue)]
        assert frames[0]["type"] == "gap" and frames[0]["first_seq"] == 0
        assert frames[0]["last_seq"] == hub.tx.oldest_seq - 1
        assert [s for f in frames[1:] for s in f["seqs"]] == [32, 34, 36, 38]
        hub.publish_transactions(_txs(100, [9000, 9000], [[RAY], [VOTE]]), 99)
        assert orjson.loads(_payload(_drain(c.queue)[0][3]))["seqs"] == [40]
        assert hub.tx.seq_at_time(90_000 + 2) == 38
    asyncio.run(go())


def test_a_slow_filtered_client_gets_a_gap_counting_its_own_items():
    async def go():
        hub = Hub(queue_frames=1)
        c = hub.new_client()
        hub.subscribe(c, ["transactions"], None, TxFilter(RAY, None))
        for k in range(3):
            hub.publish_transactions(_txs(10 * k, [0, 0, 0], [[RAY], [VOTE], [RAY]]), k)
        assert len(_drain(c.queue)) == 1
        hub.flush_gaps()
        gap = orjson.loads(_payload(_drain(c.queue)[0][3]))
        assert (gap["missed"], gap["first_seq"], gap["last_seq"]) == (4, 3, 8)
    asyncio.run(go())


def test_from_is_a_sequence_a_time_in_ns_or_an_iso_time():
    assert parse_from(None) == (None, None)
    assert parse_from(12) == (12, None)
    assert parse_from({"time_ns": 1_750_000_000_123_456_789}) == (None, 1_750_000_000_123_456_789)
    assert parse_from("2025-06-15T15:06:40Z") == (None, 1_750_000_000 * 10**9)
    assert parse_from("2025-06-15T17:06:40.5+02:00") == (None, 1_750_000_000_500_000_000)
    assert parse_from("2025-06-15T15:06:40") == (None, 1_750_000_000 * 10**9)        # no zone: UTC
    for bad, field in ((-1, "from"), ({"time_ns": -5}, "from.time_ns"), ("yesterday", "from"), (True, "from"),
                       ({"time": 1}, "from"), (1.5, "from"), ("9999-01-01", "from"), ("2262-04-12", "from")):
        with pytest.raises(FilterError) as e:
            parse_from(bad)
        assert e.value.field == field


@pytest.mark.parametrize("chunk", [1 << 16, 1_000])
def test_the_index_maps_sequences_to_time_and_id_and_back(chunk, monkeypatch):
    import workbench.api.seq_index as seq_index
    monkeypatch.setattr(seq_index, "CHUNK", chunk)      # (1,000: appends and reads cross chunks)
    idx = SeqIndex()
    ids = [str(uuid.uuid4()) for _ in range(10_000)]
    ts = [1000 + (i // 3) for i in range(10_000)]
    idx.append(ts[:7], ids[:7], engine=True)
    idx.append(ts[7:2_500], seq_index.uuid_bytes(ids[7:2_500]), engine=False)       # (the 16 bytes already)
    idx.append(ts[2_500:], ids[2_500:], engine=True)
    assert idx.n == 10_000 and idx.ids(5, 9) == ids[5:9] and idx.ts(5, 9).tolist() == ts[5:9]
    assert idx.engine(5, 9).tolist() == [True, True, False, False]
    for lo, hi in ((0, 10_000), (995, 1_005), (2_499, 2_501), (9_999, 10_000), (9_990, 20_000)):
        assert idx.ids(lo, hi) == ids[lo:hi] and idx.ts(lo, hi).tolist() == ts[lo:hi]
        assert idx.engine(lo, hi).tolist() == [i < 7 or i >= 2_500 for i in range(lo, min(hi, 10_000))]
    assert idx.first_at_or_after(1002) == 6 and idx.first_at_or_after(10**9) == 10_000
    assert idx.first_at_or_after(4_000) == 9_000
    assert idx.has_ids([ids[42], str(uuid.uuid4()), ids[9_999], ids[1_500]]).tolist() == [True, False, True, True]


def test_uuid_text_is_read_in_one_pass_as_uuid_would_read_it():
    import pyarrow as pa
    from workbench.api.seq_index import uuid_bytes
    ids = [str(uuid.uuid4()) for _ in range(1_000)]
    want = [uuid.UUID(i).bytes for i in ids]
    chunked = pa.chunked_array([pa.array(ids[:300]), pa.array(ids[300:])])
    for given in (ids, pa.array(ids), pa.array(ids).slice(1), chunked):
        got = [bytes(v) for v in uuid_bytes(given)]
        assert got == (want[1:] if len(given) == 999 else want)
    odd = [ids[0].upper(), "{" + ids[1] + "}", ids[2].replace("-", ""), "urn:uuid:" + ids[3]]   # uuid.UUID's other forms
    assert [bytes(v) for v in uuid_bytes(odd)] == want[:4]
    assert [bytes(v) for v in uuid_bytes(pa.array([ids[5].upper(), ids[6]]))] == want[5:7]       # upper case: one pass too
    with pytest.raises(ValueError):
        uuid_bytes([ids[0], ids[1][:-1] + "g"])                  # not hex: refused as uuid.UUID refuses it
    with pytest.raises(ValueError):
        uuid_bytes([ids[0], ids[1][:4] + " " + ids[1][5:]])      # a space where a digit goes (fromhex would skip it)
    assert uuid_bytes([]).shape == (0,)


def test_a_store_part_goes_out_as_frames_and_gaps_in_sequence_order():
    async def go():
        hub = Hub()
        c = hub.new_client()
        rows = [b"1", b"2", None, None, b"5"] + [b"%d" % i for i in range(6, 2506)]
        ch = Channel("opportunities")
        ch.add([b"0"], 7)                       # every item's batch was handed on at 7
        _queue_runs(c, 100, rows, "not in the store", ch)
        msgs = [orjson.loads(_payload(f[3])) for f in _drain(c.queue)]
        spans = [(m["type"], m["first_seq"], m["last_seq"]) for m in msgs]
        assert spans == [("rows", 100, 101), ("gap", 102, 103), ("rows", 104, 1103), ("rows", 1104, 2103),
                         ("rows", 2104, 2604)]
        assert msgs[1]["missed"] == 2 and msgs[0]["handed_ns"] == 7
    asyncio.run(go())


def test_every_rows_frame_carries_the_handed_ns_of_its_first_items_batch():
    async def go():
        hub = Hub(history_items=100)
        hub.publish("opportunities", [b"0", b"1", b"2"], 1_000)
        hub.publish("opportunities", [b"3"], 2_000)
        c = hub.new_client()
        hub.subscribe(c, ["opportunities"], 1)
        hub.publish("opportunities", [b"4"], 3_000)
        frames = [orjson.loads(_payload(f[3])) for f in _drain(c.queue)]
        assert [(f["first_seq"], f["handed_ns"]) for f in frames] == [(1, 1_000), (4, 3_000)]
        assert [r for f in frames for r in f["rows"]] == [1, 2, 3, 4]
    asyncio.run(go())


def test_only_live_frames_are_timed_and_a_write_records_their_age():
    """A frame published as its rows are handed on carries their hand-on time (``live_ns``); a
    catch-up frame from memory carries 0 and is not timed (its age is the subscriber's choice); the
    socket writer's ``sent_live`` records the age of a live frame at its write in ``ws_frame_ns``."""
    async def go():
        hub = Hub(history_items=100)
        hub.publish("opportunities", [b"0"], 1_000)
        opp, tx = hub.new_client(), hub.new_client()
        hub.subscribe(opp, ["opportunities"], 0)
        hub.subscribe(tx, ["transactions"], 0)
        handed = time.time_ns() - 2_000_000
        hub.publish("opportunities", [b"1"], handed)
        hub.publish_transactions(_txs(1, [0], [[RAY]]), handed)
        catch_up, live = (f[3] for f in _drain(opp.queue) if isinstance(f[3], Shared))
        (tx_live,) = (f[3] for f in _drain(tx.queue) if isinstance(f[3], Shared))
        assert (catch_up.live_ns, live.live_ns, tx_live.live_ns) == (0, handed, handed)
        assert hub.frame_ns.name == "ws_frame_ns" and hub.frame_ns.count == 0
        hub.sent_live(live.live_ns)
        hub.sent_live(time.time_ns() + 10**9)           # a wall clock stepped back: recorded as 0, not refused
        assert hub.frame_ns.count == 2 and hub.frame_ns.min == 0
        assert 2_000_000 <= hub.frame_ns.max < 60 * 10**9
    asyncio.run(go())


def test_an_arrow_frame_holds_the_json_frames_rows_and_header_and_is_shared_per_filter_and_format():
    async def go():
        hub = Hub(queue_frames=100)
        j, a1, a2 = (hub.new_client() for _ in range(3))
        ray = TxFilter(RAY, None)
        hub.subscribe(j, ["transactions"], None, ray)
        for c in (a1, a2):
            hub.subscribe(c, ["transactions"], None, ray, "arrow")
        hub.publish_transactions(_txs(1, [0, 5000, 9000, 20000], [[RAY], [VOTE], [VOTE, RAY], []]), 111)
        (fj,), (fa1,), (fa2,) = (_drain(c.queue) for c in (j, a1, a2))
        assert fa1[3].binary and fa1[3] is fa2[3]             # encoded once for both
        table = pa.ipc.open_stream(fa1[3].payload).read_all()
        header = orjson.loads(table.schema.metadata[b"frame"])
        as_json = orjson.loads(_payload(fj[3]))
        assert header == {k: v for k, v in as_json.items() if k != "rows"}
        assert [orjson.loads(orjson.dumps(r)) for r in table.to_pylist()] == as_json["rows"]
        hub.unsubscribe(a1, ["transactions"])
        assert "transactions" not in a1.formats
    asyncio.run(go())


def test_opportunities_in_arrow_frames_read_the_engine_table_live_and_its_types_from_memory():
    """A live batch's Arrow frame is the engine's table (shared by every Arrow subscriber); a resume from
    memory rebuilds frames from the JSON items with that table's types; JSON subscribers are unchanged."""
    table = pa.table({"opportunity_id": ["a", "b", "c"], "amount_in": pa.array([1, 2**63 + 5, 3], pa.uint64()),
                      "pools": [["p"], [], ["q", "r"]], "profit": [0.5, -1.0, 2.0]})
    items = [orjson.dumps(r) for r in table.to_pylist()]

    async def go():
        hub = Hub(queue_frames=100)
        j, a1, a2 = (hub.new_client() for _ in range(3))
        hub.subscribe(j, ["opportunities"], None)
        for c in (a1, a2):
            hub.subscribe(c, ["opportunities"], None, fmt="arrow")
        hub.publish("opportunities", items, 7, table=table)
        (fj,), (fa1,), (fa2,) = (_drain(c.queue) for c in (j, a1, a2))
        assert fa1[3].binary and fa1[3] is fa2[3] and not fj[3].binary
        live = pa.ipc.open_stream(fa1[3].payload).read_all()
        assert orjson.loads(live.schema.metadata[b"frame"]) == {k: v for k, v in orjson.loads(_payload(fj[3])).items()
                                                               if k != "rows"}
        assert live.replace_schema_metadata(None).equals(table)
        late = hub.new_client()
        hub.subscribe(late, ["opportunities"], 0, fmt="arrow")            # from memory: the JSON items
        (fl,) = _drain(late.queue)
        again = pa.ipc.open_stream(fl[3].payload).read_all()
        assert again.schema.remove_metadata() == table.schema and again.replace_schema_metadata(None).equals(table)
        posted = [orjson.dumps({"opportunity_id": "d", "note": "x"})]        # another shape: as JSON gives it
        hub.publish("opportunities", posted, 8)
        (fp,) = _drain(a1.queue)
        assert pa.ipc.open_stream(fp[3].payload).read_all().to_pylist() == [{"opportunity_id": "d", "note": "x"}]
        hub.publish("opportunities", [orjson.dumps({"amount_in": 2**64 - 1}), orjson.dumps({"amount_in": 1})], 9)
        (fb,) = _drain(a1.queue)                    # past int64 with no table to follow: that column is uint64
        big = pa.ipc.open_stream(fb[3].payload).read_all()
        assert big.schema.field("amount_in").type == pa.uint64() and big.column("amount_in").to_pylist() == [2**64 - 1, 1]
    asyncio.run(go())


def test_a_catch_up_waiting_for_room_stops_when_the_socket_is_gone():
    from workbench.api.hub import ClientGone

    async def go():
        hub = Hub(queue_frames=1)
        c = hub.new_client()
        c.queue.put_nowait(("opportunities", 0, 0, "x"))
        waiting = asyncio.create_task(c.wait_room())
        await asyncio.sleep(0.01)
        assert not waiting.done()                    # the queue is full: it waits for the reader
        c.closed = True                              # what the socket writer does as it ends
        c.room.set()
        with pytest.raises(ClientGone):
            await asyncio.wait_for(waiting, 5)
    asyncio.run(go())
