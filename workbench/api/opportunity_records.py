"""The engine's opportunity records (engine/opps.py OPP_DTYPE) straight to the WebSocket's rows.

A server's run hands each call's opportunity records to the server as the engine hands the
call on (runner/engine_run.py ``opportunity_feed``), so they wait neither in the run's sink
queue nor behind the tables of the row files and the store. The pump makes them ready on the
event loop, where every step holds up the frames of every client, and where a step that gives
the GIL up may wait as long again to get it back on a busy machine. So a batch is one jitted
layout of every row (``_rows``) over the records' memory, with the floats' text from one orjson
call, the ids' SHA-1 from hashlib and the signatures' base58 from the engine's kernel, both
kernels keeping the GIL: no Arrow table, no Python object per value. The bytes are those
``row_items`` writes for the same rows in the store's shape (``mev_opportunities_table`` of
``opp_table``, which stays the definition: tests/test_opportunity_records.py holds the two
together); that table is built only when something reads it (the GET memory's pages, an Arrow
subscriber).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable

import numpy as np
import orjson
import pyarrow as pa
from numba import njit, uint64

from ..engine.opps import MODEL_FEATURES, OPP_DTYPE, OPP_SANDWICH, OPP_TYPE_NAMES, POOLS_PER_OPP
from ..engine.tables import MarketNames, empty_opp_table, opp_table, opportunity_uuids, uuid_texts
from ..store.columns import OPP_SOURCE, mev_opportunities_table
from ..wire.base58 import encode64_column
from ..wire.txn import SIGNATURE_SZ
from .engine_batches import EngineBatch, engine_batch
from .json_rows import keys_text, text_pieces

log = logging.getLogger(__name__)

# what a column of a row is made of (a column's plan: its kind and, for numbers, its word in the record
# or, for floats, its place in orjson's text)
(K_INT, K_UINT, K_FLOAT, K_ID, K_TYPE, K_POOLS, K_VICTIM, K_TRIGGER, K_MINT, K_POSITION, K_SOURCE) = range(11)
# the columns that are not one number field of the record as it is
_MADE = {"opportunity_id": K_ID, "type": K_TYPE, "pools": K_POOLS, "victim_signature": K_VICTIM,
         "trigger_signature": K_TRIGGER, "profit_mint": K_MINT, "position_id": K_POSITION, OPP_SOURCE: K_SOURCE}
_NUMBER_KINDS = {"i": K_INT, "u": K_UINT, "f": K_FLOAT}
# where _rows finds the fields that are not numbers, in the record's int32 / int8 view (``at``)
AT_KIND, AT_N_POOLS, AT_POOLS, AT_TOKEN, AT_POSITION = range(5)
_AT_FIELDS = (("kind", 1), ("n_pools", 1), ("pools", 4), ("profit_token", 4), ("position_row", 4))
_SIG_AT = OPP_DTYPE.fields["_sig"][1]       # where a record's signature starts
_UUID_TEXT = 36
_INT_TEXT_MAX = 20              # digits of the longest uint64, or a sign and those of the longest int64
_QUOTE, _COMMA, _LBRACKET, _RBRACKET = 34, 44, 91, 93


@njit(cache=True, nogil=True, inline="always")
def _put_uint(out, o, u):
    """Decimal text of ``u`` (uint64) at out[o:]; the offset after it."""
    digits = 1
    t = u
    while t >= uint64(10):
        t //= uint64(10)
        digits += 1
    for k in range(digits - 1, -1, -1):
        out[o + k] = uint64(48) + u % uint64(10)
        u //= uint64(10)
    return o + digits


@njit(cache=True, nogil=True, inline="always")
def _put_int(out, o, v):
    """Decimal text of ``v`` (int64, the smallest included) at out[o:]; the offset after it."""
    if v < 0:
        out[o] = 45             # -
        return _put_uint(out, o + 1, uint64(-(v + 1)) + uint64(1))
    return _put_uint(out, o, uint64(v))


@njit(cache=True, nogil=True, inline="always")
def _put(out, o, src, a, b):
    """src[a:b] at out[o:]; the offset after it (a loop: these copies are short, and a slice
    assignment's set-up costs more than the bytes)."""
    i, end, w = uint64(a), uint64(b), uint64(o)     # unsigned: no wraparound check per byte (json_rows.py)
    while i < end:
        out[w] = src[i]
        w += uint64(1)
        i += uint64(1)
    return o + (b - a)


@njit(cache=True, nogil=True, inline="always")
def _put_quoted(out, o, src, a, b):
    out[o] = _QUOTE
    o = _put(out, o + 1, src, a, b)
    out[o] = _QUOTE
    return o + 1


# The two kernels keep the GIL (no ``nogil``): they run on the event loop for tens of microseconds, and
# a kernel that gives the GIL up at its entry makes the loop wait for it again at its exit, as long as
# another thread keeps it (up to the switch interval, api/runtime_tuning.py) while every frame waits.
@njit(cache=True)
def _signatures(records, offs, data, offsets):
    """Base58 of the records' signatures (wire/base58.py ``encode64_column``, called here so that it
    keeps the GIL too)."""
    return encode64_column(records, offs, data, offsets)


@njit(cache=True)
def _rows(plan, keys, key_offs, words, w32, w8, at, pos_ids, float_text, n_floats, ids, sig_data, sig_offs,
          types, names, tokens, source, size):
    """Each row's JSON followed by a newline, its columns as ``plan`` says (rows of (kind, index)).
    The records are read as int64 ``words``, ``w32`` and ``w8`` (one row each); ``at`` says where
    the fields that are not numbers of the row lie (``AT_*``); a number column's index is its word.
    ``names``/``tokens``/``types``/``source``: (text, starts, ends) of quoted JSON strings; the
    floats' text is orjson's of an (n, ``n_floats``) array, read cell by cell. ``size``: room enough."""
    n = words.shape[0]
    # the floats' cells: runs of bytes between brackets and commas, row after row
    f_start = np.empty(n * n_floats, np.int64)
    f_end = np.empty(n * n_floats, np.int64)
    k, p, m = 0, 0, len(float_text)
    while p < m and k < n * n_floats:
        c = float_text[p]
        if c == _LBRACKET or c == _RBRACKET or c == _COMMA:
            p += 1
            continue
        f_start[k] = p
        while p < m and float_text[p] != _COMMA and float_text[p] != _RBRACKET:
            p += 1
        f_end[k] = p
        k += 1
    for i in range(n):          # the engine's indices, checked before any is read through
        if (not 0 <= w8[i, at[AT_KIND]] < len(types[1]) or not 0 <= w8[i, at[AT_N_POOLS]] <= POOLS_PER_OPP
                or not 0 <= w32[i, at[AT_TOKEN]] < len(tokens[1])
                or len(pos_ids) and w32[i, at[AT_POSITION]] >= len(pos_ids)):
            raise ValueError("an opportunity record's type, pool count, token or position is out of range")
        for t in range(w8[i, at[AT_N_POOLS]]):
            if not 0 <= w32[i, at[AT_POOLS] + t] < len(names[1]):
                raise ValueError("an opportunity record's pool is out of range")
    out = np.empty(size, np.uint8)
    o = 0
    for i in range(n):
        kind = w8[i, at[AT_KIND]]
        out[o] = 123            # {
        o += 1
        for c in range(plan.shape[0]):
            if c:
                out[o] = _COMMA
                o += 1
            o = _put(out, o, keys, key_offs[c], key_offs[c + 1])
            what, j = plan[c, 0], plan[c, 1]
            if what == K_INT:
                o = _put_int(out, o, words[i, j])
            elif what == K_UINT:
                o = _put_uint(out, o, uint64(words[i, j]))
            elif what == K_FLOAT:
                q = i * n_floats + j
                o = _put(out, o, float_text, f_start[q], f_end[q])
            elif what == K_POSITION:
                row = w32[i, at[AT_POSITION]]
                o = _put_int(out, o, pos_ids[row] if row >= 0 and len(pos_ids) else -1)
            elif what == K_ID:
                o = _put_quoted(out, o, ids[i], 0, ids.shape[1])
            elif what == K_TRIGGER or what == K_VICTIM:
                if what == K_VICTIM and kind != OPP_SANDWICH:
                    o = _put_quoted(out, o, sig_data, 0, 0)
                else:
                    o = _put_quoted(out, o, sig_data, sig_offs[i], sig_offs[i + 1])
            elif what == K_TYPE:
                o = _put(out, o, types[0], types[1][kind], types[2][kind])
            elif what == K_MINT:
                t = w32[i, at[AT_TOKEN]]
                o = _put(out, o, tokens[0], tokens[1][t], tokens[2][t])
            elif what == K_SOURCE:
                o = _put(out, o, source[0], source[1][0], source[2][0])
            else:               # K_POOLS
                out[o] = _LBRACKET
                o += 1
                for t in range(w8[i, at[AT_N_POOLS]]):
                    if t:
                        out[o] = _COMMA
                        o += 1
                    pool = w32[i, at[AT_POOLS] + t]
                    o = _put(out, o, names[0], names[1][pool], names[2][pool])
                out[o] = _RBRACKET
                o += 1
        out[o] = 125            # }
        out[o + 1] = 10         # the row's end (json_rows.py ROW_END)
        o += 2
    return out[:o]


def _word(field: str, item: int = 0, size: int = 8) -> int:
    """Index of a record field's (``item``-th value's) ``size``-byte word in an OPP_DTYPE record."""
    dt, offset = OPP_DTYPE.fields[field][:2]
    assert (offset + item * dt.base.itemsize) % size == 0 and dt.base.itemsize == size, field
    return (offset + item * size) // size


class OpportunityRecords:
    """Makes a run's opportunity records ready for the pump (``batch``). ``capture_id`` is the
    run's (the sink thread's: both name an opportunity alike); ``source`` the store's column."""

    def __init__(self, market_names: MarketNames, capture_id: Callable[[], str], source: str):
        self.names, self.capture_id, self.source = market_names, capture_id, source
        engine = empty_opp_table(market_names)
        self.schema = mev_opportunities_table(engine, source).schema
        self.keys, self.key_offs = keys_text(tuple(self.schema.names))
        plan, floats = [], []
        for name in engine.column_names + [OPP_SOURCE]:
            field, item = ("features", MODEL_FEATURES.index(name)) if name in MODEL_FEATURES else (name, 0)
            if name in _MADE:
                plan.append((_MADE[name], 0))
            elif field in OPP_DTYPE.names and OPP_DTYPE[field].base.kind in _NUMBER_KINDS:
                kind = _NUMBER_KINDS[OPP_DTYPE[field].base.kind]
                if kind == K_FLOAT:     # written from orjson's text of the floats, in plan order
                    plan.append((kind, len(floats)))
                    floats.append(_word(field, item))
                else:
                    plan.append((kind, _word(field, item)))
            else:       # a column opp_table gained: its JSON must be written here too
                raise ValueError(f"opportunity_records: no JSON for the engine's column {name!r}")
        self.plan = np.array(plan, np.int64)
        self.floats = np.array(floats, np.int64)
        self.at = np.array([_word(f, 0, size) for f, size in _AT_FIELDS], np.int64)
        self._pos_ids = np.asarray(market_names.market.pos_id, np.int64)
        self._pools = text_pieces(market_names.pools)
        self._tokens = text_pieces(market_names.tokens)
        self._types = text_pieces(pa.array([OPP_TYPE_NAMES.get(k, "") for k in range(max(OPP_TYPE_NAMES) + 1)]))
        self._source = text_pieces(pa.array([source]))
        longest = lambda p: int((p[2] - p[1]).max()) if len(p[1]) else 0      # noqa: E731
        # room a row takes at most, but for its floats' text (known per batch): keys, commas, braces,
        # quotes, numbers, id, two signatures (base58 is at most twice as long), names
        self._row_room = (int(self.key_offs[-1]) + 3 * len(plan) + 2 + _INT_TEXT_MAX * len(plan)
                          + _UUID_TEXT + 4 * SIGNATURE_SZ + 2 * (longest(self._types) + longest(self._tokens))
                          + longest(self._source) + POOLS_PER_OPP * (longest(self._pools) + 1))

    def ready(self, recs: np.ndarray) -> EngineBatch:
        """``batch``; should that fail (logged), the same rows through their table (``engine_batch``):
        a slower way, never a row lost to the stream."""
        try:
            return self.batch(recs)
        except Exception:       # noqa: BLE001 - the table path makes the same rows
            log.exception("opportunity records could not be laid out as JSON; made from their table instead")
            return engine_batch(opp_table(recs, self.names, self.capture_id()), self.source)

    def batch(self, recs: np.ndarray) -> EngineBatch:
        """``recs`` (OPP_DTYPE, not empty; kept, not copied) as a batch ready to publish."""
        recs = np.ascontiguousarray(recs)
        n = recs.shape[0]
        words = recs.view(np.int64).reshape(n, -1)
        sig_data = np.empty(n * 2 * SIGNATURE_SZ, np.uint8)
        sig_offs = np.empty(n + 1, np.int32)
        used = _signatures(recs.view(np.uint8), np.arange(n, dtype=np.int64) * OPP_DTYPE.itemsize + _SIG_AT,
                           sig_data, sig_offs)
        sig_text = sig_data[:used].tobytes().decode()
        raw = opportunity_uuids(self.capture_id(), recs, [sig_text[sig_offs[i]:sig_offs[i + 1]] for i in range(n)])
        ids = uuid_texts(raw)
        floats = orjson.dumps(np.ascontiguousarray(words.view(np.float64)[:, self.floats]),
                              option=orjson.OPT_SERIALIZE_NUMPY)
        buf = _rows(self.plan, self.keys, self.key_offs, words, recs.view(np.int32).reshape(n, -1),
                    recs.view(np.int8).reshape(n, -1), self.at, self._pos_ids, np.frombuffer(floats, np.uint8),
                    len(self.floats), ids, sig_data, sig_offs, self._types, self._pools, self._tokens,
                    self._source, n * self._row_room + len(floats))
        id_text = ids.tobytes().decode()
        types = Counter({OPP_TYPE_NAMES[k]: int(c) for k, c in enumerate(np.bincount(recs["kind"])) if c})
        names, capture_id, source = self.names, self.capture_id, self.source
        return EngineBatch(None, buf[:-1].tobytes().split(b"\n"), np.ascontiguousarray(recs["ts_ns"]),
                           [id_text[i:i + _UUID_TEXT] for i in range(0, n * _UUID_TEXT, _UUID_TEXT)],
                           raw.view("V16").ravel(), types, schema=self.schema,
                           make_table=lambda: mev_opportunities_table(opp_table(recs, names, capture_id()), source))


def warm_up() -> None:
    """Load the kernels from numba's cache (compile them, on a first run) before a server's first
    opportunities: a row of the types ``batch`` passes."""
    one = text_pieces(pa.array(["a"]))
    rec = np.zeros(1, OPP_DTYPE)
    _signatures(rec.view(np.uint8), np.array([_SIG_AT], np.int64), np.empty(2 * SIGNATURE_SZ, np.uint8),
                np.empty(2, np.int32))
    rec["n_pools"], rec["kind"] = 1, OPP_SANDWICH
    words = rec.view(np.int64).reshape(1, -1)
    _rows(np.array([[K_INT, 0], [K_POOLS, 0], [K_VICTIM, 0]], np.int64), np.zeros(3, np.uint8),
          np.zeros(4, np.int64), words, rec.view(np.int32).reshape(1, -1), rec.view(np.int8).reshape(1, -1),
          np.zeros(len(_AT_FIELDS), np.int64), np.zeros(0, np.int64), np.frombuffer(b"[[1.0]]", np.uint8), 1,
          np.zeros((1, _UUID_TEXT), np.uint8), np.zeros(1, np.uint8), np.zeros(2, np.int32), one, one, one, one, 256)
