"""Slow, obvious twin of wire/programs/: the same instruction layouts read from solders'
parse of a transaction, in plain Python.

``expected_events(payload)`` returns one dict per event, in the shape of
``tests/program_cases.py::kernel_events``: account fields are the 32-byte key, ``"lut"``
(loaded from a lookup table) or None (not in the layout); the pool also carries
``pool_lut`` = (table address, index in the table) when it is loaded.
"""

from __future__ import annotations

import hashlib

import base58

# The program ids and the Jito tip accounts are written out here on purpose, copied from the
# programs' docs and Jito's, not imported from wire/keys.py: a twin that shared the kernels'
# constants would agree with them even when a constant is wrong.
PROGRAMS = {
    "11111111111111111111111111111111": "system",
    "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA": "spl_token",
    "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb": "token_2022",
    "675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8": "raydium_amm_v4",
    "CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C": "raydium_cpmm",
    "whirLbMiicVdio4qvUfM5KAg6Ct8VwpYzGff3uctyCc": "orca_whirlpool",
}
TIPS = {base58.b58decode(a) for a in (
    "96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5", "HFqU5x63VTqvQss8hp11i4wVV8bD44PvwucfZ2bU7gRe",
    "Cw8CFyM9FkoMi7K7Crf6HNQqf4uEMzpKw6QNghXLvLkY", "ADaUMid9yfUytqMBgopwjb2DTLSokTSzL1zt6iGPaS49",
    "DfXygSm4jCyNCybVYYK6DwvWqjKee8pbDmJGcLWNDXjh", "ADuUkR4vqLUMWXxW9gh6D6L8pMSawimctcNZ5pGwDcEt",
    "DttWaMuVvTiduZRnguLF7jNxTgiMBZ1hyAumKUiL2KRL", "3AVi9Tg9Uo68tJfuvoKvqKNWKkC5wPdSSdeBnizKZ6jT")}


def disc(name: str) -> bytes:
    """Anchor discriminator: sha256("global:<name>")[:8]."""
    return hashlib.sha256(f"global:{name}".encode()).digest()[:8]


FLAG = dict(pool_in_lut=1, acct_in_lut=2, tip_dest_unresolved=4, trailing_data=8, ray_no_target_orders=16,
            extra_accounts=32)
ACCOUNT_FIELDS = ("pool", "vault_a", "vault_b", "vault_in", "vault_out", "mint_in", "mint_out", "src", "dst",
                  "authority")


def _u64(b, i):
    return int.from_bytes(b[i:i + 8], "little")


class _Msg:
    def __init__(self, payload: bytes):
        from solders.message import MessageV0
        from solders.transaction import VersionedTransaction
        m = VersionedTransaction.from_bytes(payload).message
        self.m = m
        self.keys = [bytes(k) for k in m.account_keys]
        self.loaded = []                                     # (table address, index) in message order
        if isinstance(m, MessageV0):
            lk = m.address_table_lookups
            for l in lk:
                self.loaded += [(bytes(l.account_key), i) for i in bytes(l.writable_indexes)]
            for l in lk:
                self.loaded += [(bytes(l.account_key), i) for i in bytes(l.readonly_indexes)]

    def account(self, idx):
        if idx < len(self.keys):
            return self.keys[idx], None
        return "lut", self.loaded[idx - len(self.keys)]


def expected_events(payload: bytes):
    """(events, rejects): events as dicts, rejects {name: count}."""
    msg = _Msg(payload)
    events, rejects = [], {}
    for k, ci in enumerate(msg.m.instructions):
        prog = PROGRAMS.get(base58.b58encode(msg.keys[ci.program_id_index]).decode())
        if prog is None:
            continue
        data, accts = bytes(ci.data), list(bytes(ci.accounts))
        r = _decode(prog, data, accts, msg, k)
        if isinstance(r, str):
            rejects[r] = rejects.get(r, 0) + 1
        elif r is not None:
            events.append(r)
    return events, rejects


def _ev(kind, ix, k, **kw):
    ev = dict(kind=kind, ix=ix, instr_index=k, amount_in=0, amount_out=0, exact_in=-1, a_to_b=-1, decimals=-1,
              sqrt_price_limit=0, flags=0, pool_idx=-1, pool_lut=None)
    for f in ACCOUNT_FIELDS:
        ev[f] = None
    ev.update(kw)
    return ev


def _put(ev, msg, accts, field, j):
    key, lut = msg.account(accts[j])
    ev[field] = key
    if key == "lut":
        ev["flags"] |= FLAG["acct_in_lut"] if field != "pool" else FLAG["pool_in_lut"]
    if field == "pool":
        ev["pool_idx"] = accts[j]
        ev["pool_lut"] = lut
    return key


def _decode(prog, data, accts, msg, k):
    na = len(accts)
    if prog == "raydium_amm_v4":
        if not data or data[0] not in (9, 11, 16, 17):
            return None
        tag = data[0]
        if len(data) < 17:
            return "short_data"
        v2 = tag in (16, 17)
        if (v2 and na < 8) or (not v2 and na not in (17, 18)):
            return "bad_account_count"
        ev = _ev(1, {9: 1, 11: 2, 16: 3, 17: 4}[tag], k, exact_in=int(tag in (9, 16)),
                 amount_in=_u64(data, 1), amount_out=_u64(data, 9))
        if len(data) > 17:
            ev["flags"] |= FLAG["trailing_data"]
        _put(ev, msg, accts, "pool", 1)
        if v2:
            for f, j in (("vault_a", 3), ("vault_b", 4), ("src", 5), ("dst", 6), ("authority", 7)):
                _put(ev, msg, accts, f, j)
            if na > 8:
                ev["flags"] |= FLAG["extra_accounts"]
        else:
            s = 1 if na == 18 else 0
            if not s:
                ev["flags"] |= FLAG["ray_no_target_orders"]
            for f, j in (("vault_a", 4 + s), ("vault_b", 5 + s), ("src", na - 3), ("dst", na - 2),
                         ("authority", na - 1)):
                _put(ev, msg, accts, f, j)
        return ev
    if prog == "raydium_cpmm":
        d = data[:8]
        if d not in (disc("swap_base_input"), disc("swap_base_output")):
            return None
        if len(data) < 24:
            return "short_data"
        if na < 13:
            return "bad_account_count"
        ein = d == disc("swap_base_input")
        ev = _ev(1, 5 if ein else 6, k, exact_in=int(ein), amount_in=_u64(data, 8), amount_out=_u64(data, 16))
        if len(data) > 24:
            ev["flags"] |= FLAG["trailing_data"]
        if na > 13:
            ev["flags"] |= FLAG["extra_accounts"]
        for f, j in (("pool", 3), ("authority", 0), ("src", 4), ("dst", 5), ("vault_in", 6), ("vault_out", 7),
                     ("mint_in", 10), ("mint_out", 11)):
            _put(ev, msg, accts, f, j)
        return ev
    if prog == "orca_whirlpool":
        d = data[:8]
        if d == disc("swap"):
            v2, need, need_a = False, 42, 11
        elif d == disc("swap_v2"):
            v2, need, need_a = True, 43, 15
        else:
            return None
        if len(data) < need:
            return "short_data"
        if na < need_a:
            return "bad_account_count"
        is_input, a_to_b = data[40], data[41]
        if is_input > 1 or a_to_b > 1 or (v2 and data[42] > 1):
            return "bad_data"
        amount, thr = _u64(data, 8), _u64(data, 16)
        ev = _ev(1, 8 if v2 else 7, k, exact_in=is_input, a_to_b=a_to_b,
                 amount_in=amount if is_input else thr, amount_out=thr if is_input else amount,
                 sqrt_price_limit=int.from_bytes(data[24:40], "little"))
        if len(data) > need and not v2:
            ev["flags"] |= FLAG["trailing_data"]
        if na > need_a:
            ev["flags"] |= FLAG["extra_accounts"]
        if v2:
            pos = dict(pool=4, authority=3, mint_a=5, mint_b=6, owner_a=7, vault_a=8, owner_b=9, vault_b=10)
        else:
            pos = dict(pool=2, authority=1, owner_a=3, vault_a=4, owner_b=5, vault_b=6)
        _put(ev, msg, accts, "pool", pos["pool"])
        _put(ev, msg, accts, "authority", pos["authority"])
        got = {}
        for f in ("mint_a", "mint_b", "owner_a", "vault_a", "owner_b", "vault_b"):
            if f in pos:
                got[f] = _put(ev, msg, accts, "_tmp", pos[f])
            else:
                got[f] = None
        ev.pop("_tmp")
        ev["vault_a"], ev["vault_b"] = got["vault_a"], got["vault_b"]
        i, o = ("a", "b") if a_to_b else ("b", "a")
        ev.update(src=got["owner_" + i], dst=got["owner_" + o], vault_in=got["vault_" + i],
                  vault_out=got["vault_" + o], mint_in=got["mint_" + i], mint_out=got["mint_" + o])
        return ev
    if prog == "system":
        if len(data) < 4 or int.from_bytes(data[:4], "little") != 2:
            return None
        if len(data) < 12:
            return "short_data"
        if na < 2:
            return "bad_account_count"
        lam = _u64(data, 4)
        ev = _ev(2, 9, k, amount_in=lam, amount_out=lam)
        if len(data) > 12:
            ev["flags"] |= FLAG["trailing_data"]
        if na > 2:
            ev["flags"] |= FLAG["extra_accounts"]
        src = _put(ev, msg, accts, "src", 0)
        ev["authority"] = src
        dst = _put(ev, msg, accts, "dst", 1)
        if dst == "lut":
            ev["flags"] |= FLAG["tip_dest_unresolved"]
        elif dst in TIPS:
            ev["kind"] = 3
        return ev
    if prog in ("spl_token", "token_2022"):
        if not data or data[0] not in (3, 12):
            return None
        checked = data[0] == 12
        need, need_a = (10, 4) if checked else (9, 3)
        if len(data) < need:
            return "short_data"
        if na < need_a:
            return "bad_account_count"
        amt = _u64(data, 1)
        ev = _ev(2, 11 if checked else 10, k, amount_in=amt, amount_out=amt)
        if len(data) > need:
            ev["flags"] |= FLAG["trailing_data"]
        if na > need_a:
            ev["flags"] |= FLAG["extra_accounts"]
        _put(ev, msg, accts, "src", 0)
        if checked:
            ev["decimals"] = data[9]
            for f, j in (("mint_in", 1), ("dst", 2), ("authority", 3)):
                _put(ev, msg, accts, f, j)
        else:
            for f, j in (("dst", 1), ("authority", 2)):
                _put(ev, msg, accts, f, j)
        return ev
    return None
