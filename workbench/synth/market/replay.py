"""The truth's independent replay of a written capture (tests; slow: Python per swap).

``replay_truth`` reads the capture back from its bytes and runs the rules' twin
(truth_rules.py) on every swap: a test that it gives the truth file's rows checks that the
generator wrote what its truth says, and that a quiet capture holds no opportunity.
"""

from __future__ import annotations

from pathlib import Path

from ...capture.open import open_capture
from ...wire.keys import MINT_USDC, MINT_WSOL, program_address
from ..outputs import market_path, truth_path_for
from ...config import DEFAULT_TIP_LAMPORTS
from .truth_rules import Detector


def replay_truth(capture, tip: int = DEFAULT_TIP_LAMPORTS):
    """Every opportunity the contract's rules find in ``capture``, by their twin (``Detector``),
    from the bytes: frames cut by hand, transactions parsed by solders, pools and lookup
    tables and token accounts from ``<capture>.market/``, good packets from the packet truth,
    duplicates dropped by first signature. Returns (rows, stats): rows are dicts (type,
    packet_index, pools as addresses, profit_mint, profit_quote, amount_in, amount_out,
    position_id), stats counts applied / failed transactions and swaps, and ``slack`` maps the
    packet of every applied one-swap transaction to its limit's slack (1 - min out / out, or
    max in / in - 1).
    """
    import pyarrow.parquet as pq
    from solders.transaction import VersionedTransaction

    raydium_amm_v4 = program_address("raydium_amm_v4")
    capture = Path(capture)
    folder = market_path(capture)
    tokens = pq.read_table(folder / "tokens.parquet").to_pydict()
    pools = pq.read_table(folder / "pools.parquet").to_pydict()
    luts = pq.read_table(folder / "lookup_tables.parquet").to_pydict()
    accts = pq.read_table(folder / "token_accounts.parquet").to_pydict()
    pos = pq.read_table(folder / "positions.parquet").to_pydict()
    mints = tokens["mint"]
    trow = {m: i for i, m in enumerate(mints)}
    prow = {a: i for i, a in enumerate(pools["address"])}
    res = [[int(a), int(b)] for a, b in zip(pools["reserve_a"], pools["reserve_b"])]
    pmint = [(trow[a], trow[b]) for a, b in zip(pools["mint_a"], pools["mint_b"])]
    positions = [(int(i), trow[c], int(ca), trow[d], int(da), float(th), float(b)) for i, c, ca, d, da, th, b in zip(
        pos["position_id"], pos["collateral_mint"], pos["collateral_amount"], pos["debt_mint"], pos["debt_amount"],
        pos["liquidation_threshold"], pos["liquidation_bonus"])]
    det = Detector(res, pmint, len(mints), trow.get(MINT_WSOL, -1), trow.get(MINT_USDC, -1), positions, tip)
    table = dict(zip(luts["address"], luts["keys"]))
    mint_of = dict(zip(accts["address"], accts["mint"]))
    kinds = pq.read_table(truth_path_for(capture), columns=["kind"]).column("kind").to_pylist()
    good = {"transaction", "vlan_transaction"}
    seen = set()
    rows = []
    slack = {}
    stats = dict(transactions=0, swap_transactions=0, applied=0, failed=0, swaps=0, slack=slack)
    reader = open_capture(capture)
    for batch in reader:
        for j in range(batch.off.shape[0]):
            gi = batch.first_index + j
            if kinds[gi] not in good:
                continue
            o = int(batch.off[j])
            frame = bytes(batch.buf[o:o + int(batch.caplen[j])])
            at = 18 if frame[12:14] == b"\x81\x00" else 14
            payload = frame[at + 28:]
            sig = payload[1:65]
            if sig in seen:
                continue
            seen.add(sig)
            stats["transactions"] += 1
            tx = VersionedTransaction.from_bytes(payload)
            msg = tx.message
            keys = [str(k) for k in msg.account_keys]
            lookups = getattr(msg, "address_table_lookups", None) or []
            w = [table[str(lu.account_key)][i] for lu in lookups for i in bytes(lu.writable_indexes)]
            r = [table[str(lu.account_key)][i] for lu in lookups for i in bytes(lu.readonly_indexes)]
            keys = keys + w + r
            swaps = []
            for ix in msg.instructions:
                if keys[ix.program_id_index] != raydium_amm_v4:
                    continue
                data = bytes(ix.data)
                acc = bytes(ix.accounts)
                if len(data) < 17 or data[0] not in (9, 11) or len(acc) not in (17, 18):
                    continue
                p = prow.get(keys[acc[1]])
                if p is None:
                    continue
                src_mint = mint_of.get(keys[acc[-3]])
                if src_mint is None:
                    raise AssertionError(f"packet {gi}: a swap whose source account is not in the snapshot")
                a_to_b = trow[src_mint] == pmint[p][0]
                u1 = int.from_bytes(data[1:9], "little")
                u2 = int.from_bytes(data[9:17], "little")
                if data[0] == 9:
                    swaps.append((p, a_to_b, True, u1, u2))
                else:
                    swaps.append((p, a_to_b, False, u2, u1))
            if not swaps:
                continue
            stats["swap_transactions"] += 1
            stats["swaps"] += len(swaps)
            if len(swaps) == 1:                 # the limit's slack on the state it met
                p, d, e, amount, limit = swaps[0]
                ok, a_in, a_out = det.result(p, d, e, amount, limit)
                if ok:
                    slack[gi] = 1.0 - limit / a_out if e else limit / a_in - 1.0
            applied, found = det.transaction(swaps)
            stats["applied" if applied else "failed"] += 1
            for _, o in found:
                rows.append(dict(type=o.type, packet_index=gi, pools=[pools["address"][q] for q in o.pools],
                                 profit_mint=mints[o.profit_mint], profit_quote=int(o.profit_quote),
                                 amount_in=int(o.amount_in), amount_out=int(o.amount_out),
                                 position_id=int(o.position_id)))
    return rows, stats
