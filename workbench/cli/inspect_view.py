"""What ``workbench inspect`` prints of one frame: the frame and its UDP ports, then what the
explorer shows of a transaction (signature, account keys with their roles, programs by name,
the instructions as the engine's decoders read them, swaps, transfers and tips) or of a shred;
``--offsets`` keeps the decoder's own fields (offsets into the payload) instead.

Every value from the capture reaches the console as plain Text, never as markup.
"""

from __future__ import annotations

import datetime as dt

from rich.table import Table
from rich.text import Text

from .output import console, plain

def market_labels(folder) -> tuple[dict, dict]:
    """(lookup tables: address -> its addresses, names: address -> what it is) from a market
    snapshot folder (pools, their vaults and mints by token symbol). Raises MarketError."""
    from ..engine.market.layout import PROGRAM_NAMES
    from ..engine.market.snapshot import read_snapshot_file
    from ..wire.keys import JITO_TIP_ACCOUNTS
    import base58

    def b58(b) -> str:
        return base58.b58encode(bytes(b)).decode()
    symbol = {b58(t["mint"]): t["symbol"] or b58(t["mint"])[:8] for t in read_snapshot_file(folder, "tokens")}
    names = {m: f"mint {s}" for m, s in symbol.items()}
    for pl in read_snapshot_file(folder, "pools"):
        a, b = symbol.get(b58(pl["mint_a"]), "?"), symbol.get(b58(pl["mint_b"]), "?")
        addr = b58(pl["address"])
        names[addr] = f"pool {PROGRAM_NAMES.get(pl['program'], pl['program'])} {a}/{b}"
        names[b58(pl["vault_a"])] = f"vault {a} of pool {addr[:8]}.."
        names[b58(pl["vault_b"])] = f"vault {b} of pool {addr[:8]}.."
    for tip in JITO_TIP_ACCOUNTS:
        names.setdefault(tip, "Jito tip account")
    tables = {}
    try:
        tables = {b58(t["address"]): [b58(k) for k in t["keys"]] for t in read_snapshot_file(folder, "lookup_tables")}
    except Exception as e:      # the snapshot may have no lookup tables: then they stay unresolved
        from ..errors import MarketError
        if not isinstance(e, MarketError) or "missing (a market snapshot" not in str(e):
            raise
    return tables, names


LINKTYPE_NAMES = {1: "Ethernet", 101: "raw IP", 113: "Linux cooked (SLL)", 228: "IPv4", 229: "IPv6", 12: "raw IP"}


def _time(ts_ns: int) -> str:
    sec, ns = divmod(int(ts_ns), 10**9)
    when = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=sec)
    return f"{when:%Y-%m-%d %H:%M:%S}.{ns:09d} UTC"


def _kv(title: str) -> Table:
    t = Table(title=plain(title), title_justify="left", show_header=False)
    t.add_column("field", style="bold", no_wrap=True)
    t.add_column("value")
    return t


def print_offsets(rep) -> None:
    """The decoder's view: where the frame and its payload are, and the engine's fields."""
    t = _kv(f"{rep.capture} frame {rep.frame}")
    for k in ("file_offset", "ts_ns", "caplen", "wirelen", "linktype", "src_port", "dst_port", "payload_offset",
              "payload_sz", "status"):
        t.add_row(k, plain(getattr(rep, k)))
    for k, v in {**rep.transaction, **rep.shred}.items():
        if k != "instructions":
            t.add_row(plain(k), plain(v))
    for j, ins in enumerate(rep.transaction.get("instructions", [])):
        t.add_row(f"instruction {j}", plain(", ".join(f"{k}={v}" for k, v in ins.items())))
    console.print(t)


def _frame_rows(t: Table, rep) -> None:
    t.add_row("time", plain(_time(rep.ts_ns)))
    t.add_row("in the file", plain(f"offset {rep.file_offset:,} (0x{rep.file_offset:x}), {rep.caplen:,} bytes "
                                   f"captured of {rep.wirelen:,}, link "
                                   f"{LINKTYPE_NAMES.get(rep.linktype, rep.linktype)}"))
    if rep.payload_offset >= 0:
        t.add_row("UDP", plain(f"port {rep.src_port} -> {rep.dst_port}, payload {rep.payload_sz:,} bytes at "
                               f"offset {rep.payload_offset:,} (0x{rep.payload_offset:x})"))
    t.add_row("status", Text(rep.status, style="bold" if rep.status in ("transaction", "shred") else "bold yellow"))


def _compute_budget(desc: dict) -> str:
    parts = [i["decoded"].split(".", 1)[1] for i in desc["instructions"]
             if i["program"] == "compute_budget" and i["decoded"]]
    return "; ".join(parts) if parts else "not set (the runtime's defaults)"


def _role(a: dict) -> str:
    return ("signer" if a["signer"] else "") + (", " if a["signer"] else "") + \
        ("writable" if a["writable"] else "readonly")


def _event_table(n: int, e: dict, names: dict) -> Table:
    """One event the engine's program decoders found, every address and amount whole."""
    label = {"swap": "swap", "transfer": "transfer", "tip": "Jito tip"}.get(e["kind"], e["kind"])
    t = _kv(f"{label} {n} (instruction {e['instruction']}): {e['what']}")
    if e["kind"] == "swap":
        t.add_row("pool", plain(e["pool"] or "-"))
        if names.get(e["pool"]):
            t.add_row("", plain(names[e["pool"]]))
        t.add_row("direction", plain(e["direction"]))
        if e["exact_in"]:
            t.add_row("amount in", f"{e['amount_in']:,}")
            t.add_row("minimum out", f"{e['amount_out']:,}")
        else:
            t.add_row("maximum in", f"{e['amount_in']:,}")
            t.add_row("amount out", f"{e['amount_out']:,}")
        if e.get("mint_in") or e.get("mint_out"):
            t.add_row("mints", plain(" -> ".join(names.get(m, m) if m else "?" for m in (e.get("mint_in"),
                                                                                    e.get("mint_out")))))
    else:
        t.add_row("amount", f"{e['amount_in']:,}" + (" lamports" if e["what"].startswith("system.") else ""))
    for k in ("source", "destination", "authority"):
        if e.get(k):
            t.add_row(k, plain(e[k] + (f"  ({names[e[k]]})" if names.get(e[k]) else "")))
    return t


def print_transaction(rep, desc: dict, names: dict | None = None) -> None:
    """The explorer's view of a transaction frame (``desc``: dissect.describe_transaction;
    ``names``: what addresses are, from ``market_labels``)."""
    names = names or {}
    t = _kv(f"{rep.capture} frame {rep.frame}")
    _frame_rows(t, rep)
    t.add_row("signature", plain(desc["signature"] or "-"))
    for k, sig in enumerate(desc["signatures"][1:], 1):
        t.add_row(f"signature {k}", plain(sig))
    h = desc["header"]
    t.add_row("message", plain(f"{desc['version']}, {h['required_signatures']} required signatures "
                               f"({h['readonly_signed']} readonly), {h['readonly_unsigned']} readonly unsigned, "
                               f"{len(desc['account_keys']):,} accounts"))
    t.add_row("recent blockhash", plain(desc["recent_blockhash"]))
    t.add_row("programs", plain(", ".join(desc["programs"]) or "-"))
    t.add_row("compute budget", plain(_compute_budget(desc)))
    tips = [e for e in desc["events"] if e["kind"] == "tip"]
    if tips:
        t.add_row("Jito tip", plain(f"{sum(e['amount_in'] for e in tips):,} lamports"))
    console.print(t)

    a = Table(title="account keys", title_justify="left")
    for col, kw in (("#", {"justify": "right"}), ("address", {"no_wrap": True}), ("role", {}), ("known as", {})):
        a.add_column(col, **kw)
    for acc in desc["account_keys"]:
        known = acc["program"] or names.get(acc["address"], "")
        if acc.get("lookup") and not acc["address"].startswith("lookup "):
            known = (known + ", " if known else "") + f"via lookup {acc['lookup']}"
        a.add_row(str(acc["index"]), plain(acc["address"]), _role(acc), plain(known))
    console.print(a)

    ins = Table(title="instructions", title_justify="left")
    for col, kw in (("#", {"justify": "right"}), ("program", {}), ("accounts (#)", {}),
                    ("data", {"justify": "right"}), ("decoded", {"overflow": "fold"})):
        ins.add_column(col, **kw)
    for i in desc["instructions"]:
        ins.add_row(str(i["index"]), plain(i["program"]), plain(", ".join(map(str, i["account_indexes"])) or "-"),
                    f"{i['data_sz']:,} B", plain(i["decoded"] or "-"))
    console.print(ins)

    for n, e in enumerate(desc["events"], 1):
        console.print(_event_table(n, e, names))
    if desc["event_rejects"]:
        console.print(plain("instructions the program decoders refused: " + ", ".join(
            f"{k} x{v}" for k, v in desc["event_rejects"].items())), style="yellow", soft_wrap=True)
    if desc["lookups"]:
        lu = Table(title="address table lookups", title_justify="left")
        lu.add_column("table", no_wrap=True)
        lu.add_column("writable indexes")
        lu.add_column("readonly indexes")
        for x in desc["lookups"]:
            lu.add_row(plain(x["table"]), plain(", ".join(map(str, x["writable"])) or "-"),
                       plain(", ".join(map(str, x["readonly"])) or "-"))
        console.print(lu)


def print_frame(rep, shred_kind: str = "") -> None:
    """A frame that is not a decoded transaction: the frame, and the shred's header if it is one."""
    t = _kv(f"{rep.capture} frame {rep.frame}")
    _frame_rows(t, rep)
    if rep.shred:
        for k in ("slot", "index", "version", "fec_set_index", "parent_offset", "data_sz", "num_data", "num_code"):
            if k in rep.shred:
                t.add_row(plain(k.replace("_", " ")), plain(f"{rep.shred[k]:,}"))
        if shred_kind:
            t.add_row("shred", plain(shred_kind))
    console.print(t)
