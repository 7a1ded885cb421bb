"""Hand-built market cases for the detector tests: a snapshot, solders-built Raydium v4
swaps with the program's account order, framed by scapy into a pcap.

Pools (Raydium AMM v4, fee 25/10000): two WSOL/USDC twins, X/WSOL and X/USDC (so
WSOL -> USDC -> X -> WSOL is a three-pool cycle). A trader owns one token account per
mint (token_accounts.parquet gives their mints). Lending: one position, X collateral
against USDC debt, just above its liquidation threshold.
"""

from __future__ import annotations

from pathlib import Path

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from workbench.engine.market.snapshot import write_snapshot
from workbench.wire.keys import KNOWN_PROGRAMS, MINT_USDC, MINT_WSOL

PROGRAMS = dict(KNOWN_PROGRAMS)
FEE = (25, 10_000)
PORT = 8003


class Case:
    def __init__(self, seed: int = 1):
        self.n = seed * 1000
        self.trader = Keypair.from_seed(bytes([seed]) * 32)
        self.mint_x = self.key()
        self.mints = {"WSOL": Pubkey.from_string(MINT_WSOL), "USDC": Pubkey.from_string(MINT_USDC), "X": self.mint_x}
        self.decimals = {"WSOL": 9, "USDC": 6, "X": 6}
        self.accounts = {m: self.key() for m in self.mints}      # the trader's token account per mint
        self.pools: dict[str, dict] = {}
        self.payloads: list[bytes] = []
        self.positions = []

    def key(self) -> Pubkey:
        self.n += 1
        return Keypair.from_seed(self.n.to_bytes(32, "little")).pubkey()

    def pool(self, name: str, a: str, b: str, ra: int, rb: int, program: str = "raydium_amm_v4",
             fee=FEE, wp=("", "", "", "")):
        """A pool; ``wp`` = (sqrt_price_x64, liquidity, lower, upper) for an Orca Whirlpool."""
        self.pools[name] = dict(address=self.key(), a=a, b=b, ra=ra, rb=rb, coin_vault=self.key(),
                                pc_vault=self.key(), extra=[self.key() for _ in range(10)], program=program,
                                fee=fee, wp=[str(x) for x in wp])
        return self.pools[name]

    def _send(self, ix):
        bh = Hash(len(self.payloads).to_bytes(4, "little") + bytes(28))
        msg = Message.new_with_blockhash([ix], self.trader.pubkey(), bh)
        self.payloads.append(bytes(VersionedTransaction(msg, [self.trader])))
        return len(self.payloads) - 1

    def cpmm_swap(self, pool: str, src_mint: str, amount: int, limit: int, exact_in: bool = True):
        """Raydium CPMM swap_base_input / swap_base_output (13 accounts, input vault at 6)."""
        import hashlib
        p = self.pools[pool]
        dst_mint = p["b"] if src_mint == p["a"] else p["a"]
        vin, vout = (p["coin_vault"], p["pc_vault"]) if src_mint == p["a"] else (p["pc_vault"], p["coin_vault"])
        e = p["extra"]
        tp = Pubkey.from_string(PROGRAMS["spl_token"])
        metas = [AccountMeta(self.trader.pubkey(), True, False), AccountMeta(e[0], False, False),
                 AccountMeta(e[1], False, False), AccountMeta(p["address"], False, True),
                 AccountMeta(self.accounts[src_mint], False, True), AccountMeta(self.accounts[dst_mint], False, True),
                 AccountMeta(vin, False, True), AccountMeta(vout, False, True), AccountMeta(tp, False, False),
                 AccountMeta(tp, False, False), AccountMeta(self.mints[src_mint], False, False),
                 AccountMeta(self.mints[dst_mint], False, False), AccountMeta(e[2], False, True)]
        name = "swap_base_input" if exact_in else "swap_base_output"
        a, b = (amount, limit) if exact_in else (limit, amount)
        data = hashlib.sha256(f"global:{name}".encode()).digest()[:8] + a.to_bytes(8, "little") + \
            b.to_bytes(8, "little")
        return self._send(Instruction(Pubkey.from_string(PROGRAMS["raydium_cpmm"]), data, metas))

    def wp_swap(self, pool: str, a_to_b: bool, amount: int, threshold: int, limit: int = 0, is_input: bool = True):
        """Orca Whirlpool swap (11 accounts, a_to_b in the data)."""
        import hashlib
        p = self.pools[pool]
        e = p["extra"]
        me = self.trader.pubkey()
        metas = [AccountMeta(Pubkey.from_string(PROGRAMS["spl_token"]), False, False), AccountMeta(me, True, False),
                 AccountMeta(p["address"], False, True), AccountMeta(self.accounts[p["a"]], False, True),
                 AccountMeta(p["coin_vault"], False, True), AccountMeta(self.accounts[p["b"]], False, True),
                 AccountMeta(p["pc_vault"], False, True), AccountMeta(e[0], False, True),
                 AccountMeta(e[1], False, True), AccountMeta(e[2], False, True), AccountMeta(e[3], False, True)]
        data = hashlib.sha256(b"global:swap").digest()[:8] + amount.to_bytes(8, "little") + \
            threshold.to_bytes(8, "little") + limit.to_bytes(16, "little") + bytes([int(is_input), int(a_to_b)])
        return self._send(Instruction(Pubkey.from_string(PROGRAMS["orca_whirlpool"]), data, metas))

    def swap(self, pool: str, src_mint: str, amount: int, limit: int, exact_in: bool = True):
        p = self.pools[pool]
        dst_mint = p["b"] if src_mint == p["a"] else p["a"]
        e = p["extra"]
        me = self.trader.pubkey()
        metas = [AccountMeta(Pubkey.from_string(PROGRAMS["spl_token"]), False, False),
                 AccountMeta(p["address"], False, True), AccountMeta(e[0], False, False),
                 AccountMeta(e[1], False, True), AccountMeta(e[2], False, True),
                 AccountMeta(p["coin_vault"], False, True), AccountMeta(p["pc_vault"], False, True),
                 AccountMeta(e[3], False, False), AccountMeta(e[4], False, True), AccountMeta(e[5], False, True),
                 AccountMeta(e[6], False, True), AccountMeta(e[7], False, True), AccountMeta(e[8], False, True),
                 AccountMeta(e[9], False, True), AccountMeta(e[0], False, False),
                 AccountMeta(self.accounts[src_mint], False, True), AccountMeta(self.accounts[dst_mint], False, True),
                 AccountMeta(me, True, False)]
        tag = 9 if exact_in else 11
        a, b = (amount, limit) if exact_in else (limit, amount)
        data = bytes([tag]) + a.to_bytes(8, "little") + b.to_bytes(8, "little")
        ix = Instruction(Pubkey.from_string(PROGRAMS["raydium_amm_v4"]), data, metas)
        bh = Hash(len(self.payloads).to_bytes(4, "little") + bytes(28))
        msg = Message.new_with_blockhash([ix], me, bh)
        self.payloads.append(bytes(VersionedTransaction(msg, [self.trader])))
        return len(self.payloads) - 1

    def position(self, pid: int, coll: str, coll_amount: int, debt: str, debt_amount: int, thr: float, bonus: float):
        self.positions.append((pid, coll, coll_amount, debt, debt_amount, thr, bonus))

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write ``folder/case.pcap`` (one packet per transaction, 1 ms apart) and ``folder/market``."""
        from scapy.layers.inet import IP, UDP
        from scapy.layers.l2 import Ether
        from scapy.packet import Raw
        from scapy.utils import wrpcap
        folder.mkdir(parents=True, exist_ok=True)
        pkts = []
        for i, pl in enumerate(self.payloads):
            pkt = Ether() / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=40000, dport=PORT) / Raw(pl)
            pkt.time = 1_750_000_000 + i / 1000
            pkts.append(pkt)
        cap = folder / "case.pcap"
        wrpcap(str(cap), pkts)
        s = str
        tokens = {"mint": [s(m) for m in self.mints.values()], "decimals": list(self.decimals.values()),
                  "symbol": list(self.mints)}
        names = list(self.pools)
        P = [self.pools[n] for n in names]
        pools = {"address": [s(p["address"]) for p in P], "program": [p["program"] for p in P],
                 "mint_a": [s(self.mints[p["a"]]) for p in P], "mint_b": [s(self.mints[p["b"]]) for p in P],
                 "vault_a": [s(p["coin_vault"]) for p in P], "vault_b": [s(p["pc_vault"]) for p in P],
                 "reserve_a": [p["ra"] for p in P], "reserve_b": [p["rb"] for p in P],
                 "fee_num": [p["fee"][0] for p in P], "fee_den": [p["fee"][1] for p in P],
                 "sqrt_price_x64": [p["wp"][0] for p in P], "liquidity": [p["wp"][1] for p in P],
                 "sqrt_price_lower_x64": [p["wp"][2] for p in P], "sqrt_price_upper_x64": [p["wp"][3] for p in P],
                 "tick_spacing": [64 if p["program"] == "orca_whirlpool" else 0 for p in P]}
        accts = {"address": [s(a) for a in self.accounts.values()], "mint": [s(self.mints[m]) for m in self.accounts],
                 "owner": [s(self.trader.pubkey())] * len(self.accounts)}
        pos = {"position_id": [x[0] for x in self.positions], "owner": [s(self.trader.pubkey())] * len(self.positions),
               "collateral_mint": [s(self.mints[x[1]]) for x in self.positions],
               "collateral_amount": [x[2] for x in self.positions],
               "debt_mint": [s(self.mints[x[3]]) for x in self.positions],
               "debt_amount": [x[4] for x in self.positions],
               "liquidation_threshold": [x[5] for x in self.positions],
               "liquidation_bonus": [x[6] for x in self.positions]}
        mk = write_snapshot(folder / "market", tokens, pools, token_accounts=accts,
                            positions=pos if self.positions else None)
        return cap, mk
