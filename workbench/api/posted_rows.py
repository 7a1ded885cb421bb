"""A group's stored posts made ready for the GET memory and the WebSocket, on the worker thread.

The rows a group of posts stored enter the GET memory (recent.py) and the opportunities channel
(hub.py, numbered in seq_index.py) on the event loop, which also answers every HTTP request.
What those steps need that depends on the rows alone is made here, once per group and on the
worker thread that checked them (group_commit.py): each row's key (time, id) in key order, the
ids as 16 bytes for the sequence index, the count of each type, and the list columns as tuples
(the memory's row form: a dict of only strings, numbers and tuples stops being tracked by the
cycle collector). The loop is left with what orders the rows among others: the memory's merge
and the channel's numbering.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .opportunity_rows import ID
from .post_columns import RULES
from .seq_index import uuid_bytes

_LIST_COLUMNS = tuple(r.name for r in RULES if r.kind == "str_list")


@dataclass
class PostedRows:
    rows: list[dict]            # the canonical row dicts (post_columns.NAMES order), list columns as tuples
    items: list[bytes]          # each row's JSON (as ``orjson.dumps`` of its dict)
    ids: list[str]              # opportunity ids, in row order
    times_ns: np.ndarray        # int64 ``timestamp_ns``, in row order
    id_bytes: np.ndarray        # ``V16``: the ids' 16 bytes, in row order
    keys: list[tuple]           # (timestamp_ns, id) of every row, sorted
    types: Counter              # rows per opportunity type

    def __len__(self) -> int:
        return len(self.rows)


def posted_rows(rows: list[dict], items: list[bytes]) -> PostedRows:
    """``rows`` (canonical dicts, distinct ids) and their JSON, made ready; changes ``rows``' list
    columns into tuples in place (their JSON is the same)."""
    for r in rows:
        for name in _LIST_COLUMNS:
            r[name] = tuple(r[name])
    ids = [r[ID] for r in rows]
    times = [r["timestamp_ns"] for r in rows]
    return PostedRows(rows, items, ids, np.array(times, np.int64), uuid_bytes(ids), sorted(zip(times, ids)),
                      Counter(r["type"] for r in rows))
