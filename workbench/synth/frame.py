"""Ethernet / 802.1Q / IPv4 / UDP (and TCP) framing of synthetic packets, and the bad ones.

Specs: IEEE 802.3 (Ethernet II header), IEEE 802.1Q (4-byte VLAN tag, TPID 0x8100),
RFC 791 (IPv4 header, flags DF/MF, fragment offset in 8-byte units, header checksum),
RFC 768 (UDP; checksum over the IPv4 pseudo-header, 0 sent as 0xFFFF), RFC 793 / 9293 (TCP
header and checksum), RFC 1035 section 4 (DNS query), RFC 5905 section 7.3 (NTP packet).

``_frame_packets`` (numba) writes every frame of a chunk into one buffer: link header,
IPv4 header with a valid checksum, then a UDP datagram (valid checksum) around the
staged payload, a TCP segment (valid checksum) or one IPv4 fragment of a UDP datagram.

Packet kinds and the status the decoder must give them (``KIND_NAMES``, ``KIND_EXPECTED``):
transaction and vlan_transaction -> ``transaction``; duplicate (an exact re-send of an
earlier transaction) -> ``duplicate``; truncated -> ``truncated``; trailing ->
``trailing_bytes``; too_long -> ``too_long``; non_solana (DNS to 53, NTP to 123) ->
``not_solana``; not_udp (TCP to the RPC port) -> ``not_udp``; ip_fragment (MF set) ->
``ip_fragment``; garbage (random bytes) -> "" (any reject); shred (a ShredStream data shred,
``shreds.py``, only with ``generate_capture(shreds=True)``) -> ``shred``.
"""

from __future__ import annotations

import struct

import numpy as np
from numba import njit

from ..linktypes import ETHERTYPE_VLAN, IPV4_HDR_MIN, UDP_HDR_SZ, VLAN_TAG_SZ
from ..wire.net import ETH_HDR_SZ, ETHERTYPE_IPV4, IPPROTO_UDP, IPV4_MF
from ..wire.status import (DUPLICATE, ERR_IP_FRAGMENT, ERR_NOT_SOLANA, ERR_NOT_UDP, ERR_TOO_LONG,
                           ERR_TRAILING_BYTES, ERR_TRUNCATED, SHRED, STATUS_NAMES, TXN)

# --- packet kinds (the `kind` column of the ground truth) ------------------------------------
KIND_TRANSACTION = 0        # a valid transaction to the validator's port
KIND_DUPLICATE = 1          # an exact re-send of an earlier transaction (same bytes, same client)
KIND_TRUNCATED = 2          # a valid transaction cut at a random length in [1, size)
KIND_TRAILING = 3           # a valid transaction + 1-16 random bytes (still <= 1232)
KIND_TOO_LONG = 4           # a well-formed transaction of 1240-1460 bytes (> PACKET_DATA_SIZE)
KIND_GARBAGE = 5            # random bytes, 1-1232, to the validator's port
KIND_NON_SOLANA = 6         # the host's own DNS (UDP 53) or NTP (UDP 123) traffic
KIND_NOT_UDP = 7            # TCP to the JSON-RPC port (HTTP request or bare ACK)
KIND_IP_FRAGMENT = 8        # one IPv4 fragment (MF set) of a transaction datagram
KIND_VLAN_TRANSACTION = 9   # a valid transaction in an 802.1Q-tagged frame
KIND_SHRED = 10             # a ShredStream data shred of the current slot (shreds.py)
KIND_NAMES = ("transaction", "duplicate", "truncated", "trailing", "too_long", "garbage", "non_solana",
              "not_udp", "ip_fragment", "vlan_transaction", "shred")
KIND_EXPECTED = (STATUS_NAMES[TXN], STATUS_NAMES[DUPLICATE], STATUS_NAMES[ERR_TRUNCATED],
                 STATUS_NAMES[ERR_TRAILING_BYTES], STATUS_NAMES[ERR_TOO_LONG], "", STATUS_NAMES[ERR_NOT_SOLANA],
                 STATUS_NAMES[ERR_NOT_UDP], STATUS_NAMES[ERR_IP_FRAGMENT], STATUS_NAMES[TXN], STATUS_NAMES[SHRED])

# share of each bad kind among bad packets (bad packets are `bad_rate` of all packets)
BAD_KIND_SHARES = {
    KIND_DUPLICATE: 0.25,       # clients re-send: the commonest "bad" packet on a TPU port
    KIND_TRUNCATED: 0.15,
    KIND_TRAILING: 0.10,
    KIND_TOO_LONG: 0.10,
    KIND_GARBAGE: 0.15,
    KIND_NON_SOLANA: 0.10,
    KIND_NOT_UDP: 0.08,
    KIND_IP_FRAGMENT: 0.07,
}
VLAN_SHARE = 0.03           # of good transactions, sent in 802.1Q frames
DUPLICATE_LOOKBACK = 64     # a duplicate re-sends one of the last 64 good transactions
FIRST_FRAGMENT_SHARE = 0.7  # ip_fragment: first fragments (offset 0, UDP header); the rest are middle ones

# --- header layout ---------------------------------------------------------------------------
TCP_HDR_SZ = 20             # bytes: no options (data offset 5)
TCP_CSUM_OFF = 16           # byte offset of the checksum in the TCP header
IPPROTO_TCP = 6
IP_FLAG_DF = 0x4000         # don't fragment
ETH_MTU = 1500              # bytes of IP packet per Ethernet frame
UDP_PAYLOAD_MAX = ETH_MTU - IPV4_HDR_MIN - UDP_HDR_SZ   # the largest datagram payload one frame carries
VLAN_ID = 100               # VID of the tagged frames

# --- addresses -------------------------------------------------------------------------------
VALIDATOR_IP = 0x0A000001   # 10.0.0.1: the capturing validator
RESOLVER_IP = 0x0A000035    # 10.0.0.53: DNS resolver
NTP_SERVER_IP = 0x0A00007B  # 10.0.0.123: NTP server
VALIDATOR_MAC = 0xB8CEF6A1B2C3   # b8:ce:f6 (NVIDIA/Mellanox ConnectX OUI)
GATEWAY_MAC = 0x0C42A1D4E5F6     # 0c:42:a1 (Mellanox OUI): the router for DNS/NTP traffic
N_CLIENTS = 1024            # clients 10.{1..254}.x.y, one MAC (02:xx locally administered) and port each
DNS_PORT = 53
NTP_PORT = 123
RPC_PORT = 8899             # Solana JSON-RPC over HTTP (TCP)
EPHEMERAL_PORTS = (32768, 60999)   # Linux ip_local_port_range


@njit(cache=True, nogil=True, inline="always")
def _put_be16(b, i, v):
    b[i] = (v >> 8) & 0xFF
    b[i + 1] = v & 0xFF


@njit(cache=True, nogil=True, inline="always")
def _put_be32(b, i, v):
    b[i] = (v >> 24) & 0xFF
    b[i + 1] = (v >> 16) & 0xFF
    b[i + 2] = (v >> 8) & 0xFF
    b[i + 3] = v & 0xFF


@njit(cache=True, nogil=True, inline="always")
def _put_mac(b, i, v):
    for k in range(6):
        b[i + k] = (v >> (8 * (5 - k))) & 0xFF


@njit(cache=True, nogil=True)
def _sum16(b, start, n, acc):
    """One's-complement running sum of big-endian 16-bit words (odd tail padded with 0)."""
    end = start + n - 1
    i = start
    while i < end:
        acc += (np.int64(b[i]) << 8) | np.int64(b[i + 1])
        i += 2
    if n & 1:
        acc += np.int64(b[start + n - 1]) << 8
    return acc


@njit(cache=True, nogil=True, inline="always")
def _fold(acc):
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return (~acc) & 0xFFFF


@njit(cache=True, nogil=True, inline="always")
def _pseudo(src_ip, dst_ip, proto, length):
    return (src_ip >> 16) + (src_ip & 0xFFFF) + (dst_ip >> 16) + (dst_ip & 0xFFFF) + proto + length


@njit(cache=True, nogil=True)
def _frame_packets(kind, src, pay_off, pay_sz, emit_sz, extra, extra_sz, frag_lo, frag_hi, src_mac, dst_mac,
                   src_ip, dst_ip, sport, dport, ip_id, ttl, out, out_off, out_sz):
    """Frame packet i around ``src[pay_off[i]:...]`` into ``out``; fills ``out_off/out_sz``.

    UDP kinds carry ``emit_sz[i]`` payload bytes then ``extra[i, :extra_sz[i]]``;
    KIND_NOT_UDP carries a whole TCP segment (checksum filled here); KIND_IP_FRAGMENT
    carries bytes [frag_lo, frag_hi) of the UDP datagram around the full payload
    (``pay_sz``), with MF set. ``out`` needs room for each packet's full datagram plus
    headers. Returns the bytes used.
    """
    pos = 0
    for i in range(kind.shape[0]):
        k = kind[i]
        start = pos
        # --- Ethernet (+ 802.1Q) ---
        _put_mac(out, pos, dst_mac[i])
        _put_mac(out, pos + 6, src_mac[i])
        pos += 12
        if k == KIND_VLAN_TRANSACTION:
            _put_be16(out, pos, ETHERTYPE_VLAN)
            _put_be16(out, pos + 2, VLAN_ID)
            pos += VLAN_TAG_SZ
        _put_be16(out, pos, ETHERTYPE_IPV4)
        pos += 2
        ip = pos
        l4 = ip + IPV4_HDR_MIN
        o = pay_off[i]
        flags = IP_FLAG_DF
        proto = IPPROTO_UDP
        if k == KIND_NOT_UDP:                        # the staged bytes are a whole TCP segment
            proto = IPPROTO_TCP
            n = pay_sz[i]
            for j in range(n):
                out[l4 + j] = src[o + j]
            out[l4 + TCP_CSUM_OFF] = 0
            out[l4 + TCP_CSUM_OFF + 1] = 0
            c = _fold(_sum16(out, l4, n, _pseudo(src_ip[i], dst_ip[i], IPPROTO_TCP, n)))
            _put_be16(out, l4 + TCP_CSUM_OFF, c)
            ip_payload = n
        else:
            n = pay_sz[i] if k == KIND_IP_FRAGMENT else emit_sz[i]
            for j in range(n):
                out[l4 + UDP_HDR_SZ + j] = src[o + j]
            m = extra_sz[i]
            for j in range(m):
                out[l4 + UDP_HDR_SZ + n + j] = extra[i, j]
            ulen = UDP_HDR_SZ + n + m
            _put_be16(out, l4, sport[i])
            _put_be16(out, l4 + 2, dport[i])
            _put_be16(out, l4 + 4, ulen)
            out[l4 + 6] = 0
            out[l4 + 7] = 0
            c = _fold(_sum16(out, l4, ulen, _pseudo(src_ip[i], dst_ip[i], IPPROTO_UDP, ulen)))
            _put_be16(out, l4 + 6, c if c != 0 else 0xFFFF)
            ip_payload = ulen
            if k == KIND_IP_FRAGMENT:                # keep bytes [lo, hi) of the datagram
                lo = frag_lo[i]
                hi = frag_hi[i]
                if lo > 0:
                    for j in range(hi - lo):
                        out[l4 + j] = out[l4 + lo + j]
                ip_payload = hi - lo
                flags = IPV4_MF | (lo // 8)
        # --- IPv4 ---
        out[ip] = 0x45
        out[ip + 1] = 0
        _put_be16(out, ip + 2, IPV4_HDR_MIN + ip_payload)
        _put_be16(out, ip + 4, ip_id[i])
        _put_be16(out, ip + 6, flags)
        out[ip + 8] = ttl[i]
        out[ip + 9] = proto
        out[ip + 10] = 0
        out[ip + 11] = 0
        _put_be32(out, ip + 12, src_ip[i])
        _put_be32(out, ip + 16, dst_ip[i])
        _put_be16(out, ip + 10, _fold(_sum16(out, ip, IPV4_HDR_MIN, np.int64(0))))
        pos = l4 + ip_payload
        out_off[i] = start
        out_sz[i] = pos - start
    return pos


def frame_capacity(kind: np.ndarray, pay_sz: np.ndarray, extra_sz: np.ndarray) -> int:
    """Bytes ``out`` needs for ``_frame_packets`` (each packet's full datagram plus headers)."""
    per = ETH_HDR_SZ + VLAN_TAG_SZ + IPV4_HDR_MIN + UDP_HDR_SZ
    return int(pay_sz.sum() + extra_sz.sum()) + per * kind.shape[0] + 64


# --- clients ---------------------------------------------------------------------------------

def clients(rng: np.random.Generator, n: int = N_CLIENTS):
    """(ip, mac, port, ttl) arrays of ``n`` distinct clients in 10.1.0.0-10.254.255.255."""
    ips = np.empty(0, np.int64)
    while ips.shape[0] < n:
        cand = (10 << 24) | (rng.integers(1, 255, 2 * n) << 16) | (rng.integers(0, 256, 2 * n) << 8) \
            | rng.integers(1, 255, 2 * n)
        ips = np.unique(np.concatenate([ips, cand]))
    ips = rng.permutation(ips)[:n].astype(np.int64)
    mac = (0x02 << 40) | (rng.integers(0, 256, n) << 32) | ips        # 02:xx:0a:..: locally administered
    port = rng.integers(EPHEMERAL_PORTS[0], EPHEMERAL_PORTS[1] + 1, n)
    ttl = 64 - rng.integers(1, 13, n)                                  # 1-12 hops away
    return ips, mac.astype(np.int64), port.astype(np.int64), ttl.astype(np.int64)


# --- payloads of the non-Solana kinds (few per chunk: plain Python) ---------------------------

_DNS_NAMES = (b"api.mainnet-beta.solana.com", b"entrypoint.mainnet-beta.solana.com", b"ntp.ubuntu.com",
              b"mainnet.block-engine.jito.wtf", b"frankfurt.mainnet.block-engine.jito.wtf",
              b"metrics.solana.com", b"github.com", b"pool.ntp.org")
_NTP_EPOCH_OFFSET = 2_208_988_800     # seconds from 1900-01-01 to 1970-01-01


def dns_query(rng: np.random.Generator) -> bytes:
    """A recursive DNS query (RFC 1035 4.1) for A or AAAA of a host a validator looks up."""
    name = _DNS_NAMES[int(rng.integers(len(_DNS_NAMES)))]
    qname = b"".join(bytes([len(p)]) + p for p in name.split(b".")) + b"\0"
    qtype = 1 if rng.random() < 0.7 else 28
    return struct.pack(">HHHHHH", int(rng.integers(0, 65536)), 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", qtype, 1)


def ntp_request(ts_ns: int) -> bytes:
    """An NTPv4 client packet (RFC 5905 7.3): LI 0, VN 4, mode 3, transmit timestamp set."""
    sec = ts_ns // 1_000_000_000 + _NTP_EPOCH_OFFSET
    frac = ((ts_ns % 1_000_000_000) << 32) // 1_000_000_000
    return bytes([0x23, 0, 6, 0xE9]) + b"\0" * 36 + struct.pack(">II", sec & 0xFFFFFFFF, frac)


def tcp_segment(rng: np.random.Generator, sport: int, dport: int) -> bytes:
    """A TCP segment to the JSON-RPC port: an HTTP POST (PSH|ACK) or a bare ACK; checksum 0
    (``_frame_packets`` fills it)."""
    seq, ack = (int(x) for x in rng.integers(0, 2**32, 2))
    if rng.random() < 0.6:
        method = ("getSlot", "getLatestBlockhash", "getBalance", "getHealth")[int(rng.integers(4))]
        body = f'{{"jsonrpc":"2.0","id":{int(rng.integers(1, 10_000))},"method":"{method}"}}'.encode()
        data = (b"POST / HTTP/1.1\r\nHost: 10.0.0.1:8899\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        flags = 0x18
    else:
        data, flags = b"", 0x10
    return struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 502, 0, 0) + data


def garbage(rng: np.random.Generator) -> bytes:
    """Random bytes: half short (1-64), half up to 1232."""
    n = int(rng.integers(1, 65)) if rng.random() < 0.5 else int(rng.integers(65, 1233))
    return rng.bytes(n)
