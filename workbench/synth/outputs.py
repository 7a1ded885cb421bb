"""The files a generated capture comes with: where they sit beside it and what they hold.

``<capture>.truth.parquet`` (one row per packet, ``truth_schema``) always;
with a market, ``<capture>.market/`` (the engine's snapshot) and
``<capture>.opportunities.truth.parquet`` (``opp_truth_schema``). The generator writes them and
the truth replay (synth/market/replay.py) reads them back, so both take the names from here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..wire.base58 import encode_column
from ..wire.txn import SIGNATURE_SZ

TRUTH_SUFFIX = ".truth.parquet"
OPP_TRUTH_SUFFIX = ".opportunities.truth.parquet"
MARKET_SUFFIX = ".market"


def truth_path_for(capture) -> Path:
    p = Path(capture)
    return p.with_name(p.name + TRUTH_SUFFIX)


def opportunities_truth_path(capture) -> Path:
    p = Path(capture)
    return p.with_name(p.name + OPP_TRUTH_SUFFIX)


def market_path(capture) -> Path:
    p = Path(capture)
    return p.with_name(p.name + MARKET_SUFFIX)


def truth_schema():
    """The ground-truth Parquet schema; field comments in the table below.

    packet_index      int64   0-based frame index in the capture
    ts_ns             int64   capture timestamp (ns since the Unix epoch)
    kind              string  frame.KIND_NAMES
    expected_status   string  wire.status name the decoder must produce; "" = any reject
    signature         string  base58 first signature (transaction, vlan_transaction, duplicate), else ""
    version           string  "legacy" | "0" ("" when not a transaction)
    size              int32   bytes of UDP payload (the transaction's size); 0 for not_udp, ip_fragment
    num_signatures    int32   signatures (0 when not a transaction; so are the counts below)
    num_account_keys  int32   static account keys
    num_instructions  int32   top-level instructions
    num_lookup_tables int32   address table lookups (v0)
    compute_unit_limit int64  SetComputeUnitLimit units, 0 if unset
    compute_unit_price int64  SetComputeUnitPrice micro-lamports per CU, 0 if unset
    jito_tip_lamports int64   sum of System transfers to the 8 Jito tip accounts
    programs          list<string>  base58 program ids invoked, unique, first appearance first
    shape             string  traffic.shapes.SHAPE_NAMES: the generator's archetype ("" if none)
    """
    import pyarrow as pa
    return pa.schema([
        ("packet_index", pa.int64()), ("ts_ns", pa.int64()), ("kind", pa.string()),
        ("expected_status", pa.string()), ("signature", pa.string()), ("version", pa.string()),
        ("size", pa.int32()), ("num_signatures", pa.int32()), ("num_account_keys", pa.int32()),
        ("num_instructions", pa.int32()), ("num_lookup_tables", pa.int32()), ("compute_unit_limit", pa.int64()),
        ("compute_unit_price", pa.int64()), ("jito_tip_lamports", pa.int64()), ("programs", pa.list_(pa.string())),
        ("shape", pa.string()),
    ])


def opp_truth_schema():
    """The opportunities ground truth, one row per opportunity the rules find.

    type                   string   'sandwich' | 'arbitrage' | 'liquidation'
    packet_index           int64    the trigger packet (the victim; the swap after which it exists)
    ts_ns                  int64    its capture timestamp
    trigger_signature      string   base58 first signature of the trigger transaction
    pools                  list<string>  pool addresses in trade order (sandwich, liquidation: one)
    profit_mint            string   mint profit_quote counts in
    profit_quote           int64    gross profit in profit_mint base units, before the tip
    amount_in              uint64   front-run / arbitrage input / liquidation repay
    amount_out             uint64   back-run output / arbitrage output / seized collateral
    expected_profit_sol    float64  profit_quote * price_sol(profit_mint) - tip, in SOL
    position_id            int64    liquidation: the position; -1 otherwise
    primary                bool     the opportunity injected at this packet (False: one it also opened)
    injection              int32    index of the injection (-1 none)
    taken_by_competitor    bool     a competitor's back-run closed it within 1-50 ms
    competitor_packet_index int64   that back-run's packet, -1
    """
    import pyarrow as pa
    return pa.schema([
        ("type", pa.string()), ("packet_index", pa.int64()), ("ts_ns", pa.int64()),
        ("trigger_signature", pa.string()), ("pools", pa.list_(pa.string())), ("profit_mint", pa.string()),
        ("profit_quote", pa.int64()),
        ("amount_in", pa.uint64()), ("amount_out", pa.uint64()), ("expected_profit_sol", pa.float64()),
        ("position_id", pa.int64()), ("primary", pa.bool_()), ("injection", pa.int32()),
        ("taken_by_competitor", pa.bool_()), ("competitor_packet_index", pa.int64()),
    ])


def b58_column(buf: np.ndarray, off: np.ndarray, n: int = SIGNATURE_SZ):
    """A pyarrow string array: base58 of the ``n``-byte field at each ``off`` ("" where off < 0).

    The encoding is the workbench's own (wire/base58.py, tested against the base58 package).
    """
    import pyarrow as pa

    off = np.asarray(off, np.int64)
    good = off >= 0
    k = int(good.sum())
    data = np.empty(max(1, k * (2 * n)), np.uint8)
    sub = np.empty(k + 1, np.int32)
    used = encode_column(np.asarray(buf, np.uint8), off[good], n, data, sub)
    lens = np.zeros(off.shape[0], np.int32)
    lens[good] = np.diff(sub)
    offsets = np.zeros(off.shape[0] + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    return pa.StringArray.from_buffers(off.shape[0], pa.py_buffer(offsets), pa.py_buffer(data[:used].copy()))
