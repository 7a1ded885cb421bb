"""The registry of decoders and the one dispatch over the program id of every instruction.

``decode_events`` runs every top-level instruction of a decoded transaction
(``wire/txn.py`` rows) through the decoder of its program; ``decode_swaps`` through the
DEX decoders only (what pool tracking needs). ``program_ids_of`` gives each instruction
its program's interned key id first, so the dispatch compares small integers, not keys.
``DECODERS`` is the Python-side table of what is registered and where each layout was
read; the tests check every registered instruction kind against solders-built ones.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..keys import ID_SYSTEM, PUBKEY_SZ, lookup
from .events import (EV_OUTPUT_FULL, IX_CPMM_SWAP_BASE_INPUT, IX_CPMM_SWAP_BASE_OUTPUT, IX_RAY_SWAP_BASE_IN,
                     IX_RAY_SWAP_BASE_IN_V2, IX_RAY_SWAP_BASE_OUT, IX_RAY_SWAP_BASE_OUT_V2, IX_SYSTEM_TRANSFER,
                     IX_TOKEN_TRANSFER, IX_TOKEN_TRANSFER_CHECKED, IX_WP_SWAP, IX_WP_SWAP_V2)
from .orca_whirlpool import ID_ORCA_WHIRLPOOL, _decode_whirlpool
from .raydium_amm_v4 import ID_RAYDIUM_AMM_V4, _decode_raydium_v4
from .raydium_cpmm import ID_RAYDIUM_CPMM, _decode_raydium_cpmm
from .spl_token import ID_SPL_TOKEN, ID_TOKEN_2022, _decode_token
from .system import _decode_system


class Decoder(NamedTuple):
    """One registered decoder (the Python-side table; the jitted dispatch is decode_events)."""
    program: str        # name in wire/keys.py KNOWN_PROGRAMS
    ix: tuple           # IX_* kinds it emits
    source: str         # where its layout was read


DECODERS = (
    Decoder("raydium_amm_v4", (IX_RAY_SWAP_BASE_IN, IX_RAY_SWAP_BASE_OUT, IX_RAY_SWAP_BASE_IN_V2,
                               IX_RAY_SWAP_BASE_OUT_V2),
            "raydium-io/raydium-amm program/src/instruction.rs, program/src/processor.rs"),
    Decoder("raydium_cpmm", (IX_CPMM_SWAP_BASE_INPUT, IX_CPMM_SWAP_BASE_OUTPUT),
            "raydium-io/raydium-cp-swap programs/cp-swap/src/lib.rs, src/instructions/swap_base_input.rs"),
    Decoder("orca_whirlpool", (IX_WP_SWAP, IX_WP_SWAP_V2),
            "orca-so/whirlpools programs/whirlpool/src/instructions/swap.rs, instructions/v2/swap.rs"),
    Decoder("system", (IX_SYSTEM_TRANSFER,), "agave SystemInstruction::Transfer (bincode u32 tag 2)"),
    Decoder("spl_token", (IX_TOKEN_TRANSFER, IX_TOKEN_TRANSFER_CHECKED), "spl-token TokenInstruction (tags 3, 12)"),
    Decoder("token_2022", (IX_TOKEN_TRANSFER, IX_TOKEN_TRANSFER_CHECKED), "spl-token-2022 (same tags)"),
)


# ============================================================================================
# the registry: one dispatch over the program id of every instruction
# ============================================================================================

@njit(cache=True, nogil=True, inline="always")
def _decode_all(buf, txn, instrs, luts, program_ids, events, e0, rejects, swaps_only):
    """The registry's dispatch over every top-level instruction (``swaps_only``: DEX programs)."""
    e = e0
    for k in range(txn.instr_cnt):
        pid = program_ids[txn.instr_first + k]
        ins = instrs[txn.instr_first + k]
        if pid == ID_RAYDIUM_AMM_V4:
            r = _decode_raydium_v4(buf, txn, luts, ins, k, pid, events, e)
        elif pid == ID_RAYDIUM_CPMM:
            r = _decode_raydium_cpmm(buf, txn, luts, ins, k, pid, events, e)
        elif pid == ID_ORCA_WHIRLPOOL:
            r = _decode_whirlpool(buf, txn, luts, ins, k, pid, events, e)
        elif swaps_only:
            r = 0
        elif pid == ID_SYSTEM:
            r = _decode_system(buf, txn, luts, ins, k, pid, events, e)
        elif pid == ID_SPL_TOKEN or pid == ID_TOKEN_2022:
            r = _decode_token(buf, txn, luts, ins, k, pid, events, e)
        else:
            r = 0
        if r == EV_OUTPUT_FULL:
            rejects[-EV_OUTPUT_FULL] += 1
            return EV_OUTPUT_FULL
        if r < 0:
            rejects[-r] += 1
        else:
            e += r
    return e - e0


@njit(cache=True, nogil=True, _nrt=False)
def decode_events(buf, txn, instrs, luts, program_ids, events, e0, rejects):
    """Decode every top-level instruction of ``txn`` into ``events[e0:]``.

    ``instrs`` / ``luts`` are the rows decode_txn filled (``txn.instr_first`` /
    ``txn.lut_first`` index them); ``program_ids[txn.instr_first + k]`` is the interned key
    id of instruction k's program (``program_ids_of`` fills it), -1 unknown.
    ``rejects`` (int64[EV_REJECT_SLOTS]) counts rejected instructions at ``-code``.
    Returns the number of events written, or EV_OUTPUT_FULL when ``events`` had no room
    for all of them (rows from ``e0`` may be partly written: flush, then call again).
    Events come in instruction order (capture order within the transaction).
    """
    return _decode_all(buf, txn, instrs, luts, program_ids, events, e0, rejects, False)


@njit(cache=True, nogil=True, _nrt=False)
def decode_swaps(buf, txn, instrs, luts, program_ids, events, e0, rejects):
    """``decode_events`` for the DEX programs only (what pool tracking needs): transfers and
    tips are skipped without being decoded. Same returns."""
    return _decode_all(buf, txn, instrs, luts, program_ids, events, e0, rejects, True)


@njit(cache=True, nogil=True)
def program_ids_of(buf, txn, instrs, keys, key_slots, program_ids):
    """Fill ``program_ids[txn.instr_first + k]`` with the key id of each instruction's
    program (``lookup`` in the interning table: -1 when never interned)."""
    for k in range(txn.instr_cnt):
        ins = instrs[txn.instr_first + k]
        program_ids[txn.instr_first + k] = lookup(keys, key_slots, buf,
                                                  txn.acct_off + PUBKEY_SZ * np.int64(ins.program_idx))
