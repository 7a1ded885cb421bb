"""The GET memory's map from an opportunity id to its row's place, in shards.

A Python dict that keeps about the same size while ids come and go (memory evicts its oldest
rows as new ones enter) is rebuilt whenever the slots its deleted entries leave fill it up: at
200,000 ids that rebuild stopped the event loop for over 10 ms, every few seconds under posts.
Here the ids are spread by their hash over ``SHARDS`` dicts, so a rebuild costs a shard's size.
Only what recent.py asks of the map is here.
"""

from __future__ import annotations

SHARDS = 64                 # a power of two
_MASK = SHARDS - 1


class IdEntries:
    __slots__ = ("_shards",)

    def __init__(self):
        self._shards: list[dict[str, int]] = [{} for _ in range(SHARDS)]

    def get(self, oid: str, default=None):
        return self._shards[hash(oid) & _MASK].get(oid, default)

    def __getitem__(self, oid: str) -> int:
        return self._shards[hash(oid) & _MASK][oid]

    def __contains__(self, oid: str) -> bool:
        return oid in self._shards[hash(oid) & _MASK]

    def pop_many(self, oids) -> list[int]:
        """The entries of ``oids`` (all held), taken out."""
        shards = self._shards
        return [shards[hash(oid) & _MASK].pop(oid) for oid in oids]

    def update(self, pairs) -> None:
        shards = self._shards
        for oid, entry in pairs:
            shards[hash(oid) & _MASK][oid] = entry

    def held(self, ids) -> set[str]:
        """Those of ``ids`` the map holds."""
        shards = self._shards
        return {oid for oid in ids if oid in shards[hash(oid) & _MASK]}

    def values(self):
        for shard in self._shards:
            yield from shard.values()

    def __len__(self) -> int:
        return sum(map(len, self._shards))
