"""Turn the kernel's offset rows into plain values, to compare with solders and the twin."""

from __future__ import annotations

from workbench.wire.status import status_name
from workbench.wire.txn import decode_one


def kernel_decode(b: bytes):
    """(status_name, fields) in the shape of tests/reference/txn_ref.py."""
    code, t, instrs, luts = decode_one(b)
    if code != 0:
        return status_name(code), None
    sig0, a0 = int(t["sig_off"]), int(t["acct_off"])
    fields = dict(
        signatures=[b[sig0 + 64 * i: sig0 + 64 * (i + 1)] for i in range(int(t["sig_cnt"]))],
        version="legacy" if t["version"] < 0 else int(t["version"]),
        header=(int(t["num_required_signatures"]), int(t["num_readonly_signed"]), int(t["num_readonly_unsigned"])),
        keys=[b[a0 + 32 * i: a0 + 32 * (i + 1)] for i in range(int(t["acct_cnt"]))],
        blockhash=b[int(t["blockhash_off"]): int(t["blockhash_off"]) + 32],
        instructions=[(int(r["program_idx"]), list(b[r["acct_off"]: r["acct_off"] + r["acct_cnt"]]),
                       b[r["data_off"]: r["data_off"] + r["data_sz"]]) for r in instrs],
        luts=[(b[r["key_off"]: r["key_off"] + 32], list(b[r["writable_off"]: r["writable_off"] + r["writable_cnt"]]),
               list(b[r["readonly_off"]: r["readonly_off"] + r["readonly_cnt"]])) for r in luts],
    )
    return "transaction", fields


def solders_fields(b: bytes) -> dict:
    """The same fields as solders' independent decoder reads them."""
    from solders.message import MessageV0
    from solders.transaction import VersionedTransaction
    tx = VersionedTransaction.from_bytes(b)
    m = tx.message
    h = m.header
    v0 = isinstance(m, MessageV0)
    return dict(
        signatures=[bytes(s) for s in tx.signatures],
        version=0 if v0 else "legacy",
        header=(h.num_required_signatures, h.num_readonly_signed_accounts, h.num_readonly_unsigned_accounts),
        keys=[bytes(k) for k in m.account_keys],
        blockhash=bytes(m.recent_blockhash),
        instructions=[(ci.program_id_index, list(bytes(ci.accounts)), bytes(ci.data)) for ci in m.instructions],
        luts=[(bytes(l.account_key), list(bytes(l.writable_indexes)), list(bytes(l.readonly_indexes)))
              for l in m.address_table_lookups] if v0 else [],
    )
