"""The scapy layers of workbench.dissect: fields agree with solders and with the engine,
bytes round-trip, the configured ports bind them, and damaged payloads are judged, not raised."""

from __future__ import annotations

import base58
import pyarrow.parquet as pq
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from solders.transaction import VersionedTransaction

from conftest import CAPTURES, fixture_txn_files
from workbench.capture import open_capture
from workbench.config import Settings
from workbench.dissect import (DEFAULT_TRANSACTION_PORTS, PROGRAM_NAME, SolanaInstruction, SolanaShred, SolanaTx,
                               bind_ports, decode_short_vec, describe_transaction, dissect_frame, encode_short_vec,
                               read_frame, show_frame)
from workbench.wire.keys import program_address
from workbench.wire.net import udp_payload
from workbench.wire.shred import decode_shred_one
from workbench.wire.txn import decode_one

SHRED_PCAP = "firedancer/src/disco/shred/fixtures/demo-shreds.pcap"


def _payloads(fixtures):
    out = []
    for f in fixture_txn_files(fixtures):
        b = f.read_bytes()
        if decode_one(b)[0] == 0:
            out.append((f.name, b))
    return out


def test_short_vec_round_trip_and_layout():
    for n, enc in ((0, b"\x00"), (0x7F, b"\x7f"), (0x80, b"\x80\x01"), (0x3FFF, b"\xff\x7f"),
                   (0x4000, b"\x80\x80\x01"), (0xFFFF, b"\xff\xff\x03")):
        assert encode_short_vec(n) == enc
        assert decode_short_vec(enc + b"\x99") == (n, len(enc))
    with pytest.raises(ValueError):
        encode_short_vec(0x10000)


def test_fields_agree_with_solders_on_real_transactions(fixtures):
    pays = _payloads(fixtures)
    assert len(pays) >= 10, "expected the Firedancer transaction fixtures"
    for name, b in pays:
        p = SolanaTx(b)
        assert p.status == "ok", name
        tx = VersionedTransaction.from_bytes(b)
        msg = tx.message
        assert [bytes(s) for s in p.signatures] == [bytes(s) for s in tx.signatures], name
        assert [bytes(k) for k in p.account_keys] == [bytes(k) for k in msg.account_keys], name
        assert bytes(p.recent_blockhash) == bytes(msg.recent_blockhash), name
        h = msg.header
        assert (p.num_required_signatures, p.num_readonly_signed, p.num_readonly_unsigned) == (
            h.num_required_signatures, h.num_readonly_signed_accounts, h.num_readonly_unsigned_accounts), name
        assert len(p.instructions) == len(msg.instructions), name
        for ins, ref in zip(p.instructions, msg.instructions):
            assert ins.program_id_index == ref.program_id_index
            assert list(ins.accounts) == list(ref.accounts)
            assert bytes(ins.data) == bytes(ref.data)
        lookups = getattr(msg, "address_table_lookups", None)
        if lookups is None:                 # legacy message
            assert p.version == -1
        else:
            assert p.version == 0
            assert [(bytes(lk.account_key), list(lk.writable_indexes), list(lk.readonly_indexes))
                    for lk in p.lookups] == [(bytes(lk.account_key), list(lk.writable_indexes),
                                              list(lk.readonly_indexes)) for lk in lookups], name
        assert bytes(p) == b, f"{name}: bytes do not round-trip"


def test_every_truncation_is_judged_by_the_engine(fixtures):
    name, b = _payloads(fixtures)[0]
    for n in range(1, len(b)):
        p = SolanaTx(b[:n])                       # never raises
        code = decode_one(b[:n])[0]
        assert code < 0 and p.status != "ok", (name, n)
    assert SolanaTx(b).status == "ok"


def test_built_transaction_is_what_solders_reads():
    keys = [bytes([i + 1]) * 32 for i in range(3)] + [base58.b58decode(program_address("system"))]
    p = SolanaTx(signatures=[b"\x07" * 64], num_required_signatures=1, num_readonly_unsigned=1, account_keys=keys,
                 recent_blockhash=b"\x09" * 32,
                 instructions=[SolanaInstruction(program_id_index=3, accounts=[0, 1],
                                                 data=(2).to_bytes(4, "little") + (5000).to_bytes(8, "little"))])
    raw = bytes(p)
    tx = VersionedTransaction.from_bytes(raw)
    assert [bytes(k) for k in tx.message.account_keys] == keys
    assert bytes(tx.message.instructions[0].data)[4:] == (5000).to_bytes(8, "little")
    again = SolanaTx(raw)
    assert again.status == "ok" and again.version == -1
    assert "system.transfer: 5,000" in again.show(dump=True)


def test_bound_port_dissects_udp_payload_and_show_prints_it(fixtures):
    _name, b = _payloads(fixtures)[0]
    bind_ports(transaction_ports=(9999,), shred_ports=())
    pkt = Ether(bytes(Ether() / IP(dst="10.0.0.1") / UDP(sport=1234, dport=9999) / Raw(b)))
    assert pkt.haslayer(SolanaTx)
    text = pkt.show(dump=True)
    assert "Solana transaction" in text and base58.b58encode(b[1:65]).decode() in text
    assert "status    = ok" in text
    other = Ether(bytes(Ether() / IP(dst="10.0.0.1") / UDP(sport=1234, dport=9998) / Raw(b)))
    assert not other.haslayer(SolanaTx)            # not a configured port: scapy leaves it Raw
    assert dissect_frame(bytes(other)).haslayer(SolanaTx)   # the engine's rules: any port is tried


def test_default_binding_without_configured_ports():
    bound = bind_ports(settings=Settings())
    assert bound["transaction_ports"] == DEFAULT_TRANSACTION_PORTS


def test_capture_frames_match_ground_truth_signatures():
    truth = pq.read_table(CAPTURES / "demo.pcapng.truth.parquet").to_pandas()
    want = truth[truth["expected_status"] == "transaction"].head(200)
    for row in want.itertuples():
        p = read_frame(CAPTURES / "demo.pcapng", int(row.packet_index))
        tx = p.getlayer(SolanaTx)
        assert tx is not None and tx.status == "ok", row.packet_index
        assert tx.signature() == row.signature
        assert len(tx.instructions) == row.num_instructions
    bad = truth[truth["expected_status"] == "truncated"].head(5)
    for row in bad.itertuples():
        tx = read_frame(CAPTURES / "demo.pcapng", int(row.packet_index)).getlayer(SolanaTx)
        assert tx is not None and tx.status == "truncated"
    assert "Solana transaction" in show_frame(CAPTURES / "demo.pcapng", int(want.iloc[0].packet_index))


def test_shreds_agree_with_the_engine_decoder(fixtures):
    n = 0
    for b in open_capture(fixtures / SHRED_PCAP):
        for i in range(b.n):
            off, cl = int(b.off[i]), int(b.caplen[i])
            st, poff, psz, _s, _d = udp_payload(b.buf, off, cl, int(b.linktype[i]))
            payload = bytes(b.buf[poff:poff + psz])
            code, row = decode_shred_one(payload)
            pkt = dissect_frame(bytes(b.buf[off:off + cl]), int(b.linktype[i]))
            sh = pkt.getlayer(SolanaShred)
            assert sh is not None
            assert sh.status == ("ok" if row is not None else sh.status)
            if row is not None:
                assert (sh.slot, sh.index, sh.shred_version, sh.fec_set_index) == (
                    int(row["slot"]), int(row["index"]), int(row["version"]), int(row["fec_set_index"]))
                assert sh.kind.split()[0] in ("data", "code")
                n += 1
    assert n > 10


# --- issue 17 item 7: what `workbench inspect` shows of a transaction ---------------------------
def test_describe_transaction_agrees_with_solders(fixtures):
    for name, b in _payloads(fixtures):
        d = describe_transaction(b)
        tx = VersionedTransaction.from_bytes(b)
        msg = tx.message
        keys = [str(k) for k in msg.account_keys]
        assert d["status"] == "ok" and d["signature"] == str(tx.signatures[0]), name
        assert d["signatures"] == [str(x) for x in tx.signatures], name
        assert d["recent_blockhash"] == str(msg.recent_blockhash), name
        static = d["account_keys"][:len(keys)]
        assert [a["address"] for a in static] == keys, name
        assert [a["signer"] for a in static] == [msg.is_signer(i) for i in range(len(keys))], name
        if hasattr(msg, "is_maybe_writable"):                       # v0: solders says which may be written
            assert [a["writable"] for a in static] == [msg.is_maybe_writable(i) for i in range(len(keys))], name
        assert [a["program"] for a in static] == [PROGRAM_NAME.get(k, "") for k in keys], name
        assert len(d["instructions"]) == len(msg.instructions), name
        for ins, ref in zip(d["instructions"], msg.instructions):
            want = keys[ref.program_id_index] if ref.program_id_index < len(keys) else None
            if want is not None:
                assert ins["program_address"] == want and ins["program"] == PROGRAM_NAME.get(want, want), name
            assert ins["account_indexes"] == list(ref.accounts) and ins["data_hex"] == bytes(ref.data).hex()
            assert [a for a, i in zip(ins["accounts"], ref.accounts) if i < len(keys)] == \
                [keys[i] for i in ref.accounts if i < len(keys)]
        loaded = sum(len(lu["writable"]) + len(lu["readonly"]) for lu in d["lookups"])
        assert len(d["account_keys"]) == len(keys) + loaded, name
        assert all(a["address"].startswith("lookup ") for a in d["account_keys"][len(keys):]), name


def test_describe_transaction_matches_the_market_capture_truth():
    """On the bundled market capture: tips, compute budget and programs as the generator wrote
    them, and a swap on every opportunity's trigger transaction."""
    from workbench.frame_report import inspect_frame
    truth = pq.read_table(CAPTURES / "market.pcapng.truth.parquet").to_pylist()
    seen_tip = seen_swap = 0
    for row in [r for r in truth if r["expected_status"] == "transaction"][:150]:
        d = describe_transaction(inspect_frame(CAPTURES / "market.pcapng", row["packet_index"]).payload)
        assert d["signature"] == row["signature"]
        tips = sum(e["amount_in"] for e in d["events"] if e["kind"] == "tip")
        assert tips == row["jito_tip_lamports"], row["packet_index"]
        seen_tip += tips > 0
        cb = " ".join(i["decoded"] for i in d["instructions"] if i["program"] == "compute_budget")
        if row["compute_unit_limit"] > 0 and "set_compute_unit_limit" in cb:
            assert f"set_compute_unit_limit: {row['compute_unit_limit']:,} CU" in cb
        if row["compute_unit_price"] > 0:
            assert f"set_compute_unit_price: {row['compute_unit_price']:,} micro-lamports/CU" in cb
        assert set(d["programs"]) == {PROGRAM_NAME.get(p, p) for p in row["programs"]}, row["packet_index"]
        seen_swap += any(e["kind"] == "swap" for e in d["events"])
    assert seen_tip > 10 and seen_swap > 10
    opps = pq.read_table(CAPTURES / "market.pcapng.opportunities.truth.parquet").to_pylist()
    tables = {t["address"]: t["keys"] for t in
              pq.read_table(CAPTURES / "market.pcapng.market" / "lookup_tables.parquet").to_pylist()}
    for o in [o for o in opps if o["packet_index"] >= 0 and o["type"] != "liquidation"][:20]:
        payload = inspect_frame(CAPTURES / "market.pcapng", o["packet_index"]).payload
        d = describe_transaction(payload)
        assert d["signature"] == o["trigger_signature"]
        swaps = [e for e in d["events"] if e["kind"] == "swap"]
        assert swaps and all(e["amount_in"] > 0 and e["pool"] for e in swaps), o
        # with the snapshot's lookup tables the pool is an address, one of the opportunity's pools
        resolved = [e["pool"] for e in describe_transaction(payload, tables)["events"] if e["kind"] == "swap"]
        assert not any(p.startswith("lookup ") for p in resolved) and set(resolved) & set(o["pools"]), (resolved, o)


def test_describe_transaction_judges_a_damaged_payload():
    truth = pq.read_table(CAPTURES / "demo.pcapng.truth.parquet").to_pylist()
    from workbench.frame_report import inspect_frame
    good = next(t for t in truth if t["expected_status"] == "transaction")
    payload = inspect_frame(CAPTURES / "demo.pcapng", good["packet_index"]).payload
    d = describe_transaction(payload[: len(payload) // 2])
    assert d["status"] == "truncated" and d["events"] == []
