"""A posted JSON body checked and made into its rows' JSON lines by one jitted pass, no Python objects.

msgspec's pass (posted_json.py) decodes a body into one Struct a row, a Python object for every
value (34 columns: 340 objects for a post of 10 rows), and the rows' JSON for the post log, the
GET memory and the WebSocket is then encoded right back from them. Here ``scan_body`` walks the
body's bytes once: it checks each row's fields against the table's columns (the same kinds and
bounds as msgspec's types: posted_json.py ``field_kind``) and writes each row's JSON line (the
table's keys in its order, each value's text as posted, the DEFAULT's text for a field left out),
reading out only what the server needs besides: each row's time, its id's place and its type's
label. It lets the GIL go, so a large body checked off the event loop does not hold the loop.

It takes a strict subset of what msgspec takes, and hands everything else back (``None``): then
msgspec's pass, and after it ``check_rows``, decide and name what is wrong, as before. The subset:
rows of the table's fields only, each once, the required ones there; integers in their column's
range and int64's, no ``-0``; numbers for a float column whose magnitude is surely finite
(below 10^288, no exponent below -300); strings of printable ASCII without escapes; canonical
lower-case UUID text; enum labels; ``null`` where the column's DEFAULT is nan; whitespace anywhere
JSON allows it. A value's text goes to the line as posted (a float's ``1.50`` stays ``1.50``, the
same number as msgspec's ``1.5``), but for a float posted as an integer, which gets ``.0`` so that a
reader of the line sees a float, as msgspec writes it; a list of strings is written without its
whitespace.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..store import schema as S
from .opportunity_rows import BATCH_ROWS_MAX, ID, REQUIRED, TABLE, json_name, literal_default
from .posted_json import ENUM, FLOAT, INT, NAN_FLOAT, TEXT, TEXTS, TIME, UUID, UUID_TEXT, encoded_default, field_kind

TIME_NAME, TYPE_NAME = "timestamp_ns", "type"   # the fields read out of every row besides its id
DIGITS_MAX = 19                 # an integer of at most this many digits fits uint64 (a time in ns has 19)
# a float column's number below 10^288 only: finite, and read by msgspec's fast path when its line is
# decoded again (decode_items); msgspec reads larger ones by a path a thousand times slower
# (posted_json.py's window), and the largest float is below 10^309
MAGNITUDE_DIGITS_MAX = 288
TINY_EXPONENT_MIN = -300        # an exponent below this: left to msgspec (a subnormal, or 0.0)
EXPONENT_DIGITS_MAX = 4

_INT64_MAX = np.uint64(2**63 - 1)
FALLBACK = -1                   # scan_body: not in the subset (msgspec's pass decides)
OUT_FULL = -2                   # scan_body: ``out`` too small (a row's line longer than ROW_EXTRA allows for)

_QUOTE, _BACKSLASH, _COLON, _COMMA = 34, 92, 58, 44
_LBRACE, _RBRACE, _LBRACKET, _RBRACKET = 123, 125, 91, 93
_MINUS, _PLUS, _DOT, _ZERO, _NINE = 45, 43, 46, 48, 57


# the columns of ``spec``: one row a table column
KIND, LO, HI, REQ, LABEL_FIRST, LABEL_COUNT, NAME_LO, NAME_HI, PREFIX_LO, PREFIX_HI, DEFAULT_LO, DEFAULT_HI = range(12)
# the entries of ``consts``
ID_COL, TIME_COL, TYPE_COL, ROW_EXTRA = range(4)
# the columns of ``info``: one row a posted row
ROW_END, ROW_TIME, ROW_TYPE, ROW_ID_AT = range(4)


def _table():
    """The table's columns as the kernel's arrays: ``text`` (every name, key, DEFAULT and label),
    ``spec``, ``label_offs`` (each label's place in ``text``), ``consts``; the fewest bytes a row of
    the subset takes (its required fields, shortest); the type column's labels."""
    cols = S.TABLES[TABLE].columns
    names = [json_name(c) for c in cols]
    text = bytearray()

    def put(part: bytes) -> tuple[int, int]:
        text.extend(part)
        return len(text) - len(part), len(text)

    spec, label_offs, row_extra, row_min = [], [], 2, 1       # (a row's braces; the comma before the next)
    for c, name in zip(cols, names):
        kind, arg = field_kind(c)
        default = literal_default(c)
        key = put(name.encode())
        prefix = put(b'"%s":' % name.encode())
        dflt = put(b"" if default is REQUIRED else encoded_default(default))
        labels = arg if kind == ENUM else ()
        first = len(label_offs)
        for lab in labels:
            label_offs.append(put(lab.encode())[0])
        label_offs.append(len(text))
        spec.append((kind, max(arg[0], -(2**63) + 1) if kind == INT else 0,
                     min(arg[1] - 1, 2**63 - 1) if kind == INT else 2**63 - 1,
                     default is REQUIRED, first, len(labels), *key, *prefix, *dflt))
        # a row's line at most: its values' text as posted, and for each column its key, a comma, and
        # the larger of its DEFAULT's text and a float's ".0"
        row_extra += prefix[1] - prefix[0] + 1 + max(dflt[1] - dflt[0], 2)
        if default is REQUIRED:
            shortest = {UUID: 38, ENUM: 2 + min(map(len, labels), default=0), TEXT: 2, TEXTS: 2}.get(kind, 1)
            row_min += prefix[1] - prefix[0] + shortest + 1
    # (label_offs: each label's start, then after a column's labels the end of its last)
    consts = (names.index(ID), names.index(TIME_NAME), names.index(TYPE_NAME), row_extra)
    return (np.frombuffer(bytes(text), np.uint8).copy(), np.array(spec, np.int64),
            np.array(label_offs, np.int64), np.array(consts, np.int64), row_min,
            tuple(field_kind(cols[names.index(TYPE_NAME)])[1]))


TEXT_, SPEC, LABEL_OFFS, CONSTS, ROW_BYTES_MIN, TYPE_LABELS = _table()


# The helpers index with uint64 inside: a signed index makes numba test it for a negative value
# (Python's from-the-end) at every access, which keeps their byte loops from being vectorised
# (several times slower: benchmarks/bench_post_check.py times the whole pass). A uint64 mixed with an
# int64 makes a float in numba, so every constant they add is a uint64 (``_1``).
_0, _1 = np.uint64(0), np.uint64(1)
MORE, CLOSED = 1, 2             # _after_item: another item follows; the list or object ends
_CHUNK = np.uint64(16)


@njit(cache=True, nogil=True, inline="always")
def _ws(b, i, n):
    """The first index at or after ``i`` that is not JSON whitespace (``n`` when none is)."""
    j, m = np.uint64(i), np.uint64(n)
    while j < m:
        c = b[j]
        if c != 32 and c != 10 and c != 13 and c != 9:
            break
        j += _1
    return np.int64(j)


@njit(cache=True, nogil=True, inline="always")
def _plain_string(b, i, n):
    """The end (past the closing quote) of a string of printable ASCII without escapes at ``b[i]``
    (its opening quote); -1 when it is not one."""
    if i >= n or b[np.uint64(i)] != _QUOTE:
        return -1
    j, m = np.uint64(i) + _1, np.uint64(n)
    while j + _CHUNK <= m:                  # a chunk at a time while none of its bytes ends or spoils it
        special = 0
        for k in range(_CHUNK):
            c = b[j + k]
            special |= (c == _QUOTE) | (c == _BACKSLASH) | (c < 32) | (c > 126)
        if special:
            break
        j += _CHUNK
    while j < m:
        c = b[j]
        if c == _QUOTE:
            return np.int64(j + _1)
        if c < 32 or c > 126 or c == _BACKSLASH:
            return -1
        j += _1
    return -1


@njit(cache=True, nogil=True, inline="always")
def _same(b, s, e, flat, lo, hi):
    """Whether ``b[s:e]`` holds the bytes of ``flat[lo:hi]``."""
    if e - s != hi - lo:
        return False
    us, ul = np.uint64(s), np.uint64(lo)
    differ = 0
    for k in range(np.uint64(e - s)):       # (no early exit: the loop is vectorised)
        differ |= b[us + k] ^ flat[ul + k]
    return differ == 0


@njit(cache=True, nogil=True, inline="always")
def _integer(b, i, n, lo, hi, out):
    """An integer of at most DIGITS_MAX digits within int64 and in [lo, hi] at ``b[i]``: its end, its
    value in ``out[0]``; -1 when it is not one."""
    j, m = np.uint64(i), np.uint64(n)
    neg = j < m and b[j] == _MINUS
    if neg:
        j += _1
    s = j
    u = _0
    while j < m and _ZERO <= b[j] <= _NINE:
        u = u * np.uint64(10) + np.uint64(b[j] - _ZERO)
        j += _1
    d = j - s
    if d == _0 or d > DIGITS_MAX or (d > _1 and b[s] == _ZERO) or (neg and u == _0) or u > _INT64_MAX:
        return -1
    if j < m and (b[j] == _DOT or b[j] == 101 or b[j] == 69):      # a fraction or an exponent: msgspec's call
        return -1
    v = np.int64(u)
    if neg:
        v = -v
    if v < lo or v > hi:
        return -1
    out[0] = v
    return np.int64(j)


@njit(cache=True, nogil=True, inline="always")
def _number(b, i, n):
    """A JSON number surely finite at ``b[i]``: its end, negated when it has neither fraction nor
    exponent (a float's text then needs ".0"); 0 when it is not one (an end is never 0: a row's
    ``{`` is before any value)."""
    j, m = np.uint64(i), np.uint64(n)
    if j < m and b[j] == _MINUS:
        j += _1
    s = j
    while j < m and _ZERO <= b[j] <= _NINE:
        j += _1
    d = np.int64(j - s)
    if d == 0 or (d > 1 and b[s] == _ZERO):
        return 0
    if d == 1 and b[s] == _ZERO:
        d = 0                               # "0.x": below 1
    plain = True
    if j < m and b[j] == _DOT:
        plain = False
        j += _1
        f = j
        while j < m and _ZERO <= b[j] <= _NINE:
            j += _1
        if j == f:
            return 0
    e = 0
    if j < m and (b[j] == 101 or b[j] == 69):
        plain = False
        j += _1
        eneg = False
        if j < m and (b[j] == _MINUS or b[j] == _PLUS):
            eneg = b[j] == _MINUS
            j += _1
        f = j
        while j < m and _ZERO <= b[j] <= _NINE:
            e = e * 10 + np.int64(b[j] - _ZERO)
            j += _1
        if j == f or j - f > EXPONENT_DIGITS_MAX:
            return 0
        if eneg:
            e = -e
    if d + e > MAGNITUDE_DIGITS_MAX or e < TINY_EXPONENT_MIN:
        return 0
    return -np.int64(j) if plain else np.int64(j)


@njit(cache=True, nogil=True, inline="always")
def _uuid(b, s, e):
    """Whether the string ``b[s:e]`` (quotes included) is a canonical lower-case UUID's text."""
    if e - s != 38:
        return False
    at = np.uint64(s) + _1
    for k in range(36):
        c = b[at + np.uint64(k)]
        if k == 8 or k == 13 or k == 18 or k == 23:
            if c != _MINUS:
                return False
        elif not (_ZERO <= c <= _NINE or 97 <= c <= 102):
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _after_item(b, i, n, close):
    """What follows an item that ends at ``i``: (the next item's start, MORE) past a comma, (the index
    past ``close``, CLOSED), or (i, 0) for anything else; and whether whitespace was skipped."""
    j = _ws(b, i, n)
    spaced = j != i
    if j >= n:
        return j, 0, spaced
    c = b[np.uint64(j)]
    if c == close:
        return j + 1, CLOSED, spaced
    if c != _COMMA:
        return j, 0, spaced
    k = _ws(b, j + 1, n)
    return k, MORE, spaced or k != j + 1


@njit(cache=True, nogil=True, inline="always")
def _strings(b, i, n, spaced):
    """The end of a list of plain strings at ``b[i]``; -1 when it is not one. ``spaced[0]`` is set
    when it holds whitespace."""
    if i >= n or b[np.uint64(i)] != _LBRACKET:
        return -1
    j = _ws(b, i + 1, n)
    gaps = j != i + 1
    if j < n and b[np.uint64(j)] == _RBRACKET:
        spaced[0] = gaps
        return j + 1
    while True:
        j = _plain_string(b, j, n)
        if j < 0:
            return -1
        j, state, more_gaps = _after_item(b, j, n, _RBRACKET)
        gaps = gaps or more_gaps
        if state == CLOSED:
            spaced[0] = gaps
            return j
        if state != MORE:
            return -1


@njit(cache=True, nogil=True, inline="always")
def _copy(b, s, e, out, o):
    """``b[s:e]`` to ``out[o:]``; the end written."""
    us, uo = np.uint64(s), np.uint64(o)
    for k in range(np.uint64(e - s)):
        out[uo + k] = b[us + k]
    return o + (e - s)


@njit(cache=True, nogil=True, inline="always")
def _copy_compact(b, s, e, out, o):
    """``b[s:e]`` without the whitespace outside its strings (which hold no escapes); the end written."""
    inside = False
    uo = np.uint64(o)
    for k in range(np.uint64(s), np.uint64(e)):
        c = b[k]
        if c == _QUOTE:
            inside = not inside
        elif not inside and (c == 32 or c == 10 or c == 13 or c == 9):
            continue
        out[uo] = c
        uo += _1
    return np.int64(uo)


@njit(cache=True, nogil=True)
def scan_body(b, text, spec, label_offs, consts, out, info):
    """Check a JSON body's rows (a list of rows, or ``{"rows": [...]}``) and write each row's line to
    ``out``: how many rows, FALLBACK, or OUT_FULL. Row ``r``'s line ends at ``info[r, ROW_END]`` (it
    starts where the one before ends), its time is ``info[r, ROW_TIME]``, its type's label index
    ``info[r, ROW_TYPE]``, and its id's text starts at ``out[info[r, ROW_ID_AT]]``. More rows than
    ``info`` holds: FALLBACK."""
    n = len(b)
    ncol = len(spec)
    kinds = spec[:, KIND]
    id_col, time_col, type_col, row_extra = consts[ID_COL], consts[TIME_COL], consts[TYPE_COL], consts[ROW_EXTRA]
    starts = np.empty(ncol, np.int64)
    ends = np.empty(ncol, np.int64)
    code = np.zeros(ncol, np.int64)
    val = np.zeros(1, np.int64)
    i = _ws(b, 0, n)
    wrapped = i < n and b[i] == _LBRACE
    if wrapped:                                         # {"rows": [...]}, and nothing else in it
        i = _ws(b, i + 1, n)
        if i + 6 > n or b[i] != _QUOTE or b[i + 1] != 114 or b[i + 2] != 111 or b[i + 3] != 119 \
                or b[i + 4] != 115 or b[i + 5] != _QUOTE:
            return FALLBACK
        i = _ws(b, i + 6, n)
        if i >= n or b[i] != _COLON:
            return FALLBACK
        i = _ws(b, i + 1, n)
    if i >= n or b[i] != _LBRACKET:
        return FALLBACK
    i = _ws(b, i + 1, n)
    rows = 0
    o = 0
    if i < n and b[i] == _RBRACKET:
        i += 1
    else:
        while True:
            if i >= n or b[i] != _LBRACE or rows >= len(info):
                return FALLBACK
            starts[:] = -1
            size = 0
            expect = 0
            row_s = i
            i = _ws(b, i + 1, n)
            canon = i == row_s + 1              # the line is the row as posted: no space, the table's order
            if i < n and b[i] == _RBRACE:
                i += 1
            else:
                while True:                         # one field
                    if expect < ncol and _same(b, i, min(i + spec[expect, PREFIX_HI] - spec[expect, PREFIX_LO], n),
                                               text, spec[expect, PREFIX_LO], spec[expect, PREFIX_HI]):
                        # the next column's key and colon, as the line writes them: the usual row
                        c = expect
                        i += spec[c, PREFIX_HI] - spec[c, PREFIX_LO]
                        if starts[c] >= 0:
                            return FALLBACK
                        j = _ws(b, i, n)
                        if j != i:
                            canon = False
                        i = j
                    else:                           # any other key: found by name
                        ke = _plain_string(b, i, n)
                        if ke < 0:
                            return FALLBACK
                        c = -1
                        for k in range(ncol):
                            if _same(b, i + 1, ke - 1, text, spec[k, NAME_LO], spec[k, NAME_HI]):
                                c = k
                                break
                        if c < 0 or starts[c] >= 0:     # a field the table lacks, or one twice
                            return FALLBACK
                        i = _ws(b, ke, n)
                        if i >= n or b[i] != _COLON:
                            return FALLBACK
                        i = _ws(b, i + 1, n)
                        canon = False
                    kind = kinds[c]
                    s = i
                    if kind == TIME or kind == INT:
                        i = _integer(b, i, n, spec[c, LO], spec[c, HI], val)
                        if i < 0:
                            return FALLBACK
                        code[c] = val[0]
                    elif kind == FLOAT or kind == NAN_FLOAT:
                        if kind == NAN_FLOAT and i + 4 <= n and b[i] == 110 and b[i + 1] == 117 \
                                and b[i + 2] == 108 and b[i + 3] == 108:
                            i += 4
                            code[c] = 0
                        else:
                            j = _number(b, i, n)
                            if j == 0:
                                return FALLBACK
                            code[c] = 1 if j < 0 else 0         # 1: ".0" to add
                            i = -j if j < 0 else j
                            if j < 0:
                                canon = False
                    elif kind == TEXTS:
                        i = _strings(b, i, n, val)
                        if i < 0:
                            return FALLBACK
                        code[c] = val[0]
                        if val[0]:
                            canon = False
                    else:
                        i = _plain_string(b, i, n)
                        if i < 0:
                            return FALLBACK
                        if kind == UUID and not _uuid(b, s, i):
                            return FALLBACK
                        if kind == ENUM:
                            code[c] = -1
                            for k in range(spec[c, LABEL_COUNT]):
                                at = spec[c, LABEL_FIRST] + k
                                if _same(b, s + 1, i - 1, text, label_offs[at], label_offs[at + 1]):
                                    code[c] = k
                                    break
                            if code[c] < 0:
                                return FALLBACK
                    starts[c] = s
                    ends[c] = i
                    expect = c + 1
                    size += i - s
                    i, state, spaced = _after_item(b, i, n, _RBRACE)
                    if spaced:
                        canon = False
                    if state == CLOSED:
                        break
                    if state != MORE:
                        return FALLBACK
            if o + size + row_extra > len(out):
                return OUT_FULL
            if canon and expect == ncol:        # every field, in order, as the line writes it: the row itself
                info[rows, ROW_ID_AT] = o + starts[id_col] - row_s + 1
                o = _copy(b, row_s, i, out, o)
            else:
                out[o] = _LBRACE
                o += 1
                for c in range(ncol):
                    if c:
                        out[o] = _COMMA
                        o += 1
                    o = _copy(text, spec[c, PREFIX_LO], spec[c, PREFIX_HI], out, o)
                    if starts[c] < 0:
                        if spec[c, REQ]:
                            return FALLBACK
                        o = _copy(text, spec[c, DEFAULT_LO], spec[c, DEFAULT_HI], out, o)
                        continue
                    if c == id_col:
                        info[rows, ROW_ID_AT] = o + 1
                    if kinds[c] == TEXTS and code[c]:
                        o = _copy_compact(b, starts[c], ends[c], out, o)
                    else:
                        o = _copy(b, starts[c], ends[c], out, o)
                        if (kinds[c] == FLOAT or kinds[c] == NAN_FLOAT) and code[c] == 1:
                            out[o] = _DOT
                            out[o + 1] = _ZERO
                            o += 2
                out[o] = _RBRACE
                o += 1
            info[rows, ROW_END] = o
            info[rows, ROW_TIME] = code[time_col]
            info[rows, ROW_TYPE] = code[type_col]
            rows += 1
            i, state, _ = _after_item(b, i, n, _RBRACKET)
            if state == CLOSED:
                break
            if state != MORE:
                return FALLBACK
    if wrapped:
        i = _ws(b, i, n)
        if i >= n or b[i] != _RBRACE:
            return FALLBACK
        i += 1
    if _ws(b, i, n) != n:
        return FALLBACK
    return rows


class Scanned:
    """A body's rows as ``scan`` found them: each row's JSON line, id, time and type label."""

    __slots__ = ("items", "ids", "times", "types")

    def __init__(self, items: list[bytes], ids: list[str], times: list[int], types: list[str]):
        self.items, self.ids, self.times, self.types = items, ids, times, types


def scan(body: bytes) -> Scanned | None:
    """The rows of a JSON body in ``scan_body``'s subset, each id once and at most BATCH_ROWS_MAX of
    them; None for any other body (msgspec's pass decides it)."""
    rows_max = min(len(body) // ROW_BYTES_MIN + 1, BATCH_ROWS_MAX)    # (more rows than that: not the subset)
    out = np.empty(len(body) + rows_max * CONSTS[ROW_EXTRA], np.uint8)
    info = np.empty((rows_max, 4), np.int64)
    got = scan_body(np.frombuffer(body, np.uint8), TEXT_, SPEC, LABEL_OFFS, CONSTS, out, info)
    if got < 0:
        if got == OUT_FULL:
            raise AssertionError("scan_body: a row's line passed ROW_EXTRA")
        return None
    info = info[:got]
    ends = info[:, ROW_END].tolist()
    data = out[:ends[-1] if got else 0].tobytes()
    items = [data[a:e] for a, e in zip([0, *ends[:-1]], ends)]
    ids = [data[a:a + UUID_TEXT].decode() for a in info[:, ROW_ID_AT].tolist()]
    if len(set(ids)) != got:
        return None                                 # an id twice in one batch: msgspec's pass, then check_rows
    labels = TYPE_LABELS
    return Scanned(items, ids, info[:, ROW_TIME].tolist(), [labels[k] for k in info[:, ROW_TYPE].tolist()])


def warm_up() -> None:
    """Load the kernel from numba's cache, so that the first post does not wait for it."""
    scan(b"[]")
