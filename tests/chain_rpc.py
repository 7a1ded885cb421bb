"""The chain fixtures as a Solana JSON-RPC server on loopback, for the snapshot and blocks tests and benchmarks.

``RpcServer`` is a real HTTP server (http.server, a thread per connection) on 127.0.0.1:<free
port> answering getMultipleAccounts, getAccountInfo and getProgramAccounts (dataSize, memcmp
and dataSlice applied as a node applies them) from an in-memory account table, and getBlock
from a table of blocks (``block``: COMPOSED of real transactions, see below). Faults to inject
on the next requests are queued in ``faults``: ("429", retry_after), ("500",), ("rpc_error",
code, message), ("truncate",), ("sleep", seconds).

``fixture_market`` builds that table from the REAL pool accounts of tests/fixtures/chain and
the USDC mint, plus accounts COMPOSED here because no attributable source has them (their
SOURCES.md "Known gaps"): each pool's two vault token accounts (165-byte SPL Token accounts
holding the pool's mint, with balances chosen here), the other mints (82 bytes, the decimals
the pool records, or 6/9 for Whirlpool mints), and the CPMM pools' AmmConfig (236 bytes,
trade fee 2500 per 10^6, creator fee 1000). Composed bytes are packed with ``struct`` from the
programs' layouts, independently of workbench/chain, so a decoder offset error shows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import base58

TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
V4 = "675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8"
CPMM = "CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C"
WHIRLPOOL = "whirLbMiicVdio4qvUfM5KAg6Ct8VwpYzGff3uctyCc"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
SLOT = 376_400_000

# the real pool accounts in tests/fixtures/chain/accounts that the snapshot tests serve
POOL_FILES = ("raydium_amm_v4_5y2QYKY8gQCcmG6jy4fc7wFg8L5SW7bkyvMH3jUTqBdy.json",
              "raydium_cpmm_BtGUffMEnxrzdjyC3kKAHjGMpG1UdZiVWXZUaSpUv13C.json",
              "raydium_cpmm_Q2sPHPdUWFMg7M7wwrQKLrn619cAucfRsmhVJffodSp.json",
              "whirlpool_CGGNcohZdLdeDBdhmQRGmUH1Viv1p4d1ds2aPLoiVWaR.json",
              "whirlpool_HyA4ct7i4XvZsVrLyb5VJhcTP1EZVDZoF9fFGym16zcj.json")
CPMM_TRADE_FEE_RATE, CPMM_CREATOR_FEE_RATE = 2500, 1000      # composed AmmConfig, per 10^6


def b58(raw: bytes) -> str:
    return base58.b58encode(raw).decode()


def raw(address: str) -> bytes:
    return base58.b58decode(address)


def value(owner: str, data: bytes, lamports: int = 2_039_280) -> dict:
    """An account as getAccountInfo returns it (base64 data)."""
    return {"lamports": lamports, "owner": owner, "executable": False, "rentEpoch": 18446744073709551615,
            "space": len(data), "data": [base64.b64encode(data).decode(), "base64"]}


def token_account(mint: str, owner: str, amount: int) -> bytes:
    """A COMPOSED 165-byte SPL Token account: initialized, no delegate, not native, no close authority."""
    return raw(mint) + raw(owner) + struct.pack("<Q", amount) + bytes(36) + b"\x01" + bytes(56)


def mint_account(decimals: int, supply: int = 10**15) -> bytes:
    """A COMPOSED 82-byte SPL mint: no mint authority, initialized, no freeze authority."""
    return bytes(36) + struct.pack("<QBB", supply, decimals, 1) + bytes(36)


def amm_config(trade_fee_rate: int, creator_fee_rate: int) -> bytes:
    """A COMPOSED 236-byte Raydium CPMM AmmConfig."""
    disc = hashlib.sha256(b"account:AmmConfig").digest()[:8]
    body = struct.pack("<BBHQQQQ", 250, 0, 0, trade_fee_rate, 120_000, 40_000, 15 * 10**7) + bytes(64)
    return disc + body + struct.pack("<Q", creator_fee_rate) + bytes(120)


@dataclass
class PoolCase:
    """What a served pool must become in pools.parquet (computed from EXPECTED.json and the composed balances)."""
    address: str
    program: str
    row: dict


def _u(x) -> int:
    return int(x)


def fixture_market(accounts_dir: Path):
    """(account table, {pool address: PoolCase}): the real pools, their composed vaults, mints and configs."""
    expected = json.loads((accounts_dir / "EXPECTED.json").read_text())
    table, cases = {}, {}
    usdc = json.loads((accounts_dir / f"spl_mint_{USDC}.json").read_text())
    table[USDC] = value(usdc["account"]["owner"], base64.b64decode(usdc["account"]["data"][0]),
                        usdc["account"]["lamports"])
    for n, name in enumerate(POOL_FILES):
        j = json.loads((accounts_dir / name).read_text())
        a, e = j["account"], expected[name]["decoded"]
        table[j["pubkey"]] = value(a["owner"], base64.b64decode(a["data"][0]), a["lamports"] or 10**7)
        extra_a, extra_b = 10**12 + 7919 * n, 3 * 10**11 + 104729 * n     # the liquidity beyond what is owed
        if a["owner"] == V4:
            ma, mb, va, vb = e["baseMint"], e["quoteMint"], e["baseVault"], e["quoteVault"]
            owed_a, owed_b = e["baseNeedTakePnl"], e["quoteNeedTakePnl"]
            dec_a, dec_b = e["baseDecimal"], e["quoteDecimal"]
            fee = (e["swapFeeNumerator"], e["swapFeeDenominator"])
            row = {"program": "raydium_amm_v4", "sqrt_price_x64": "", "liquidity": "", "sqrt_price_lower_x64": "",
                   "sqrt_price_upper_x64": "", "tick_spacing": 0}
        elif a["owner"] == CPMM:
            ma, mb, va, vb = e["token0Mint"], e["token1Mint"], e["token0Vault"], e["token1Vault"]
            data = base64.b64decode(a["data"][0])
            creator0, creator1 = struct.unpack_from("<QQ", data, 397)     # the 2025 creator fee words
            creator_on = data[390]
            owed_a = e["protocolFeesToken0"] + e["fundFeesToken0"] + creator0
            owed_b = e["protocolFeesToken1"] + e["fundFeesToken1"] + creator1
            dec_a, dec_b = e["mint0Decimals"], e["mint1Decimals"]
            fee = (CPMM_TRADE_FEE_RATE + (CPMM_CREATOR_FEE_RATE if creator_on else 0), 1_000_000)
            table[e["ammConfig"]] = value(CPMM, amm_config(CPMM_TRADE_FEE_RATE, CPMM_CREATOR_FEE_RATE))
            row = {"program": "raydium_cpmm", "sqrt_price_x64": "", "liquidity": "", "sqrt_price_lower_x64": "",
                   "sqrt_price_upper_x64": "", "tick_spacing": 0}
        else:
            ma, mb, va, vb = e["tokenMintA"], e["tokenMintB"], e["tokenVaultA"], e["tokenVaultB"]
            owed_a, owed_b = e["protocolFeeOwedA"], e["protocolFeeOwedB"]
            dec_a, dec_b = 9, 6
            fee = (e["feeRate"], 1_000_000)
            row = {"program": "orca_whirlpool", "sqrt_price_x64": e["sqrtPrice"], "liquidity": e["liquidity"],
                   "tick_spacing": e["tickSpacing"], "tick_current_index": e["tickCurrentIndex"]}
        authority = b58(hashlib.sha256(f"composed vault owner {n}".encode()).digest())
        table[va] = value(TOKEN, token_account(ma, authority, owed_a + extra_a))
        table[vb] = value(TOKEN, token_account(mb, authority, owed_b + extra_b))
        for m, d in ((ma, dec_a), (mb, dec_b)):
            table.setdefault(m, value(TOKEN, mint_account(d)))
        row |= {"address": j["pubkey"], "mint_a": ma, "mint_b": mb, "vault_a": va, "vault_b": vb,
                "reserve_a": extra_a, "reserve_b": extra_b, "fee_num": fee[0], "fee_den": fee[1]}
        cases[j["pubkey"]] = PoolCase(j["pubkey"], row["program"], row)
    return table, cases


class RpcServer:
    """A JSON-RPC server on 127.0.0.1 serving ``accounts`` ({address: value}); use as a context manager."""

    def __init__(self, accounts: dict, slot: int = SLOT, blocks: dict | None = None):
        self.accounts, self.slot = accounts, slot
        self.blocks = blocks or {}              # slot -> getBlock result (or its JSON text, bytes),
                                                # or ("rpc_error", code, message)
        self.faults: list[tuple] = []
        self.requests: list[str] = []           # method of every request received
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True      # headers and body go in two writes: no 40 ms delayed-ACK stall

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                req = json.loads(body)
                with server.lock:
                    server.requests.append(req.get("method"))
                    fault = server.faults.pop(0) if server.faults else None
                if fault and fault[0] == "sleep":
                    time.sleep(fault[1])
                if fault and fault[0] == "429":
                    return self._send(429, b"rate limited", {"Retry-After": str(fault[1])})
                if fault and fault[0] == "500":
                    return self._send(500, b"internal error")
                if fault and fault[0] == "rpc_error":
                    return self._json({"jsonrpc": "2.0", "id": req.get("id"),
                                       "error": {"code": fault[1], "message": fault[2]}})
                got = server.blocks.get(req["params"][0]) if req.get("method") == "getBlock" else None
                if isinstance(got, tuple):
                    _, code, message = got
                    return self._json({"jsonrpc": "2.0", "id": req.get("id"),
                                       "error": {"code": code, "message": message}})
                if isinstance(got, bytes):      # a result already JSON text (the scale benchmark's composed blocks)
                    server.check_block_config(req["params"][1])
                    return self._send(200, b'{"jsonrpc":"2.0","id":%d,"result":%s}' % (req.get("id"), got),
                                      {"content-type": "application/json"})
                reply = {"jsonrpc": "2.0", "id": req.get("id"), "result": server.answer(req["method"], req["params"])}
                out = json.dumps(reply).encode()
                if fault and fault[0] == "truncate":
                    out = out[: len(out) // 2]
                self._send(200, out, {"content-type": "application/json"})

            def _json(self, obj):
                self._send(200, json.dumps(obj).encode(), {"content-type": "application/json"})

            def _send(self, code, body, headers=None):
                try:
                    self.send_response(code)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass                        # the client gave up (a timeout test)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def answer(self, method, params):
        ctx = {"context": {"slot": self.slot, "apiVersion": "2.2.0"}}
        if method == "getMultipleAccounts":
            keys = params[0]
            if len(keys) > 100:
                raise ValueError("more than 100 keys")          # a real node refuses too
            return ctx | {"value": [self.accounts.get(k) for k in keys]}
        if method == "getAccountInfo":
            return ctx | {"value": self.accounts.get(params[0])}
        if method == "getProgramAccounts":
            program, cfg = params[0], params[1]
            out = []
            for k, v in self.accounts.items():
                if v["owner"] != program:
                    continue
                data = base64.b64decode(v["data"][0])
                ok = True
                for f in cfg.get("filters", []):
                    if "dataSize" in f:
                        ok &= len(data) == f["dataSize"]
                    else:
                        want = base58.b58decode(f["memcmp"]["bytes"])
                        off = f["memcmp"]["offset"]
                        ok &= data[off:off + len(want)] == want
                if ok:
                    sl = cfg.get("dataSlice")
                    d = data[sl["offset"]:sl["offset"] + sl["length"]] if sl else data
                    out.append({"pubkey": k, "account": value(v["owner"], d, v["lamports"])})
            return ctx | {"value": out} if cfg.get("withContext") else out
        if method == "getBlock":
            self.check_block_config(params[1])
            if params[0] not in self.blocks:
                return None
            return self.blocks[params[0]]
        raise ValueError(f"method {method} not served")

    @staticmethod
    def check_block_config(cfg):
        if cfg.get("encoding") != "base64" or cfg.get("maxSupportedTransactionVersion") != 0 \
                or cfg.get("transactionDetails") != "full" or cfg.get("rewards") is not False:
            raise ValueError(f"getBlock config not served: {cfg}")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


# ============================================================================================
# getBlock: blocks COMPOSED of real transactions (issue #18 item 4)
# ============================================================================================

TX_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "chain" / "tx"
SKIPPED_MESSAGE = "Slot {} was skipped, or missing due to ledger jump to recent snapshot"


def tx_wire_bytes(tx: dict, version) -> bytes:
    """The wire bytes of a getTransaction "json"-encoded transaction (legacy or v0), rebuilt with
    solders; the fixture's signatures verify over the rebuilt message, so the bytes are the signed ones."""
    from solders.hash import Hash
    from solders.instruction import CompiledInstruction
    from solders.message import Message, MessageAddressTableLookup, MessageHeader, MessageV0
    from solders.pubkey import Pubkey
    from solders.signature import Signature
    from solders.transaction import VersionedTransaction
    m, h = tx["message"], tx["message"]["header"]
    keys = [Pubkey.from_string(k) for k in m["accountKeys"]]
    ixs = [CompiledInstruction(i["programIdIndex"], base58.b58decode(i["data"]), bytes(i["accounts"]))
           for i in m["instructions"]]
    bh = Hash.from_string(m["recentBlockhash"])
    if version == "legacy":
        msg = Message.new_with_compiled_instructions(h["numRequiredSignatures"], h["numReadonlySignedAccounts"],
                                                     h["numReadonlyUnsignedAccounts"], keys, bh, ixs)
    else:
        luts = [MessageAddressTableLookup(Pubkey.from_string(x["accountKey"]), bytes(x["writableIndexes"]),
                                          bytes(x["readonlyIndexes"])) for x in m.get("addressTableLookups", [])]
        msg = MessageV0(MessageHeader(h["numRequiredSignatures"], h["numReadonlySignedAccounts"],
                                      h["numReadonlyUnsignedAccounts"]), keys, bh, ixs, luts)
    return bytes(VersionedTransaction.populate(msg, [Signature.from_string(s) for s in tx["signatures"]]))


def fixture_transactions(tx_dir: Path = TX_DIR) -> list[tuple[bytes, dict]]:
    """(wire bytes, meta) of every REAL getTransaction response in ``tx_dir``."""
    out = []
    for f in sorted(tx_dir.glob("getTransaction_*.json")):
        r = json.loads(f.read_text())["result"]
        out.append((tx_wire_bytes(r["transaction"], r["version"]), r["meta"]))
    return out


def capture_transactions(path: Path) -> list[bytes]:
    """The transactions (UDP payloads that solders parses) of a capture, first sighting of each
    signature, in capture order; frames walked with dpkt (Ethernet, VLAN tags, IPv4 / IPv6), apart
    from wire/net.py."""
    return [frame[at:] for frame, at in capture_frames(path)]


def capture_frames(path: Path) -> list[tuple[bytes, int]]:
    """(frame, offset of its UDP payload) of each transaction ``capture_transactions`` returns."""
    import dpkt
    from solders.transaction import VersionedTransaction
    out, seen = [], set()
    with open(path, "rb") as f:
        reader = dpkt.pcapng.Reader(f) if str(path).endswith(".pcapng") else dpkt.pcap.Reader(f)
        for _ts, frame in reader:
            ip = dpkt.ethernet.Ethernet(frame).data
            udp = getattr(ip, "data", None)
            if not isinstance(udp, dpkt.udp.UDP):
                continue
            try:
                sig = bytes(VersionedTransaction.from_bytes(bytes(udp.data)).signatures[0])
            except Exception:             # noqa: BLE001 - a shred or not a transaction
                continue
            if sig not in seen:
                seen.add(sig)
                out.append((bytes(frame), len(frame) - len(udp.data)))
    return out


def ok_meta(fee: int = 5000, cu: int = 40_000) -> dict:
    """A COMPOSED meta of a successful transaction (what the composed blocks give a capture's transaction)."""
    return {"err": None, "status": {"Ok": None}, "fee": fee, "computeUnitsConsumed": cu, "preBalances": [],
            "postBalances": [], "preTokenBalances": [], "postTokenBalances": [], "loadedAddresses":
            {"writable": [], "readonly": []}}


FAILED_ERR = {"InstructionError": [0, {"Custom": 6005}]}     # a COMPOSED failure (slippage-like custom error)


def block(txs: list[tuple[bytes, dict]], slot: int, block_time: int = 1_761_676_473) -> dict:
    """A getBlock result (base64, full details, no rewards) COMPOSED of ``txs`` (wire bytes, meta)."""
    return {"blockHeight": slot - 10_000, "blockTime": block_time, "parentSlot": slot - 1,
            "blockhash": b58(hashlib.sha256(f"composed block {slot}".encode()).digest()),
            "previousBlockhash": b58(hashlib.sha256(f"composed block {slot - 1}".encode()).digest()),
            "transactions": [{"transaction": [base64.b64encode(t).decode(), "base64"], "meta": m, "version": 0}
                             for t, m in txs]}


def skipped(slot: int) -> tuple:
    """What a node answers for a skipped slot (a getBlock entry of RpcServer.blocks)."""
    return ("rpc_error", -32007, SKIPPED_MESSAGE.format(slot))
