"""Idempotence on opportunity_id between posts and the server's own engine run: an engine row is
known to the posts' id set from the moment the run hands it on (api/store_access.py
``note_hand_offs``), before the run's store writer has stored it and before the server's pump
has taken it. A post of that id in that moment is a duplicate, whether or not the server had
read the store's ids yet. A real embedded store, the run's real ``sink`` (runner/background.py),
the posts' real check and insert."""

from __future__ import annotations

import uuid

import orjson
import pyarrow as pa
import pytest

from test_api_post_columns import _short
from workbench.api.post_columns import check_group, store_table
from workbench.api.store_access import StoreAccess, note_hand_offs
from workbench.runner.background import BackgroundRun

pytestmark = pytest.mark.timeout(120)


def _hand_on(run: BackgroundRun, ids: list[str]) -> None:
    """What the run's sink thread does with an engine batch: hand the table on (its store writer
    gets it after this returns)."""
    run.sink("opportunities", pa.table({"opportunity_id": pa.array(ids, pa.string()),
                                        "profit": pa.array([0.5] * len(ids))}))


def _post(store: StoreAccess, rows: list[dict]) -> list[bool]:
    return store.insert_group(check_group([(orjson.dumps(rows), False)])).tolist()


def test_an_engine_row_handed_on_but_not_yet_stored_is_a_duplicate_for_a_post(tmp_path):
    store = StoreAccess(f"chdb://{tmp_path / 'db'}")
    run = BackgroundRun("replay", capture="unused.pcap", out_dir=str(tmp_path / "run"))
    note_hand_offs(run, store)
    try:
        # before the first post: the server has not read the store's ids yet
        early = str(uuid.uuid4())
        _hand_on(run, [early])
        fresh = _short()
        assert _post(store, [_short(opportunity_id=early), fresh]) == [False, True]
        # after it: the set is in memory; a row handed on now is in neither the store nor the pump's hands
        late = str(uuid.uuid4())
        _hand_on(run, [late])
        assert _post(store, [_short(opportunity_id=late), _short(opportunity_id=early), fresh]) == [False] * 3
        store.wait_posts_inserted()                             # (posted rows go in in the background: post_spool.py)
        assert store.count_opportunities() == 1                 # only the posted row: the engine's writer is behind
        assert len(run.take("opportunities")) == 2              # and the pump had taken neither table
        # rows the run's writer stores later, and the posted one, stay stored once each
        store.writer.insert_arrow("mev_opportunities", store_table(check_group(
            [(orjson.dumps([_short(opportunity_id=early), _short(opportunity_id=late)]), False)]).rows))
        assert _post(store, [_short(opportunity_id=early), _short(opportunity_id=late), fresh]) == [False] * 3
        assert store.count_opportunities() == 3
    finally:
        store.close()
