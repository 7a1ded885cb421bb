"""A group's stored posts made ready for the GET memory and the WebSocket, beside the check.

The rows a group of posts stored enter the GET memory (recent.py) and the opportunities channel
(hub.py, numbered in seq_index.py) on the event loop, which also answers every HTTP request.
What those steps need that depends on the rows alone is made here, once per group, where the
group was checked (group_commit.py): each row's JSON (made with the check), the times, the ids
as 16 bytes for the sequence index, and the count of each type. No row
becomes a dict: the memory makes the dicts of a group's rows from their JSON when a page first
reads them (posted_json.py ``row_dicts``). The loop is left with what orders the rows among
others: the memory's merge and the channel's numbering.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .seq_index import canonical_uuid_bytes


@dataclass
class PostedRows:
    items: list[bytes]          # each row's JSON (posted_json.py ``posted_items``), in row order
    ids: list[str]              # opportunity ids, in row order
    times: list[int]            # ``timestamp_ns``, in row order
    times_ns: np.ndarray        # the same, int64
    id_bytes: np.ndarray        # ``V16``: the ids' 16 bytes, in row order
    types: Counter              # rows per opportunity type

    def __len__(self) -> int:
        return len(self.items)


def posted_rows(group) -> PostedRows:
    """A checked group's rows (post_columns.py ``CheckedGroup``: distinct ids), made ready."""
    times = group.times
    return PostedRows(group.items, group.ids, times, np.array(times, np.int64), canonical_uuid_bytes(group.ids),
                      Counter(group.types))
