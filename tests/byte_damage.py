"""Random damage to a file's or a body's bytes, for the fuzz tests of readers that take them from
outside (Arrow posts, blocks files)."""

from __future__ import annotations

import random


def damaged(data: bytes, rng: random.Random) -> bytes:
    """``data`` with 1 to 5 random changes: a byte changed, a run of up to 15 bytes cut, or up to 7
    random bytes added."""
    b = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        at, how = rng.randrange(len(b)), rng.random()
        if how < 0.6:
            b[at] = rng.randrange(256)
        elif how < 0.8:
            del b[at:at + rng.randrange(1, 16)]
        else:
            b[at:at] = rng.randbytes(rng.randrange(1, 8))
    return bytes(b)
