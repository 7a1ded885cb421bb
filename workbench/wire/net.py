"""Link, IP and UDP walk: from a captured frame to its UDP payload, in numba.

Specs: IEEE 802.3 / 802.1Q (tags 0x8100, 0x88a8 and the pre-standard 0x9100, any
depth up to VLAN_DEPTH_MAX); Linux cooked captures SLL (tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html,
protocol at byte 14) and SLL2 (LINKTYPE_LINUX_SLL2.html, protocol at byte 0); RFC 791
(IPv4: IHL, options, fragments), RFC 8200 (IPv6 and its extension headers), RFC 768 (UDP).

``udp_payload`` never raises and never reads past ``off + caplen``: it returns
``(status, payload_off, payload_sz, src_port, dst_port)`` with ``status`` 0 or a
negative code of ``wire/status.py``. IP fragments are counted and skipped, not reassembled.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..binary import u16be, u32le, u64le
from ..linktypes import (DLT_RAW_BSD_A, DLT_RAW_BSD_B, ETHERTYPE_VLAN, IPV4_HDR_MIN, LANDED_HDR_SZ, LANDED_SLOT_OFF,
                         LANDED_STATUS_OFF, LANDED_SUCCESS, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6,
                         LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NULL, LINKTYPE_RAW, UDP_HDR_SZ, VLAN_TAG_SZ)
from .status import (ERR_BAD_IP_HEADER, ERR_IP_FRAGMENT, ERR_NET_TRUNCATED, ERR_NOT_IP, ERR_NOT_UDP,
                     ERR_UNKNOWN_LINKTYPE)

ETH_HDR_SZ = 14            # bytes: dst MAC, src MAC, ethertype
VLAN_DEPTH_MAX = 4         # stacked tags followed before giving up
SLL_HDR_SZ = 16            # bytes
SLL2_HDR_SZ = 20           # bytes
NULL_HDR_SZ = 4            # bytes
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_QINQ = 0x88A8    # 802.1ad service tag
ETHERTYPE_QINQ_OLD = 0x9100
AF_INET = 2                # NULL link: IPv4
AF_INET6_BSD = 24          # NULL link: IPv6 as NetBSD/OpenBSD write it
AF_INET6_FREEBSD = 28
AF_INET6_DARWIN = 30

IPV4_MF = 0x2000           # more-fragments flag
IPV4_FRAG_OFF_MASK = 0x1FFF
IPV6_HDR_SZ = 40           # bytes
IPV6_EXT_MAX = 8           # extension headers followed before giving up
IPPROTO_HOPOPTS = 0
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_AH = 51
IPPROTO_DSTOPTS = 60
IPPROTO_MH = 135           # mobility header: (len + 1) * 8 like the others


@njit(cache=True, nogil=True)
def _ip(buf, p, end, version_hint):
    """IPv4 or IPv6 at ``p`` (version_hint 4, 6 or 0 = from the first nibble) -> UDP header offset."""
    if p >= end:
        return ERR_NET_TRUNCATED, 0
    v = buf[p] >> 4
    if version_hint != 0 and v != version_hint:
        return ERR_BAD_IP_HEADER, 0
    if v == 4:
        if end - p < IPV4_HDR_MIN:
            return ERR_NET_TRUNCATED, 0
        ihl = np.int64(buf[p] & 0x0F) * 4
        if ihl < IPV4_HDR_MIN:
            return ERR_BAD_IP_HEADER, 0
        if ihl > end - p:
            return ERR_NET_TRUNCATED, 0
        total = u16be(buf, p + 2)
        if total < ihl:
            return ERR_BAD_IP_HEADER, 0
        frag = u16be(buf, p + 6)
        if (frag & IPV4_MF) or (frag & IPV4_FRAG_OFF_MASK):
            return ERR_IP_FRAGMENT, 0
        if buf[p + 9] != IPPROTO_UDP:
            return ERR_NOT_UDP, 0
        return p + ihl, min(end, p + total)
    if v == 6:
        if end - p < IPV6_HDR_SZ:
            return ERR_NET_TRUNCATED, 0
        plen = u16be(buf, p + 4)
        nxt = np.int64(buf[p + 6])
        ip_end = min(end, p + IPV6_HDR_SZ + plen)
        q = p + IPV6_HDR_SZ
        for _ in range(IPV6_EXT_MAX):
            if nxt == IPPROTO_UDP:
                return q, ip_end
            if nxt == IPPROTO_HOPOPTS or nxt == IPPROTO_ROUTING or nxt == IPPROTO_DSTOPTS or nxt == IPPROTO_MH:
                if ip_end - q < 8:
                    return ERR_NET_TRUNCATED, 0
                ln = (np.int64(buf[q + 1]) + 1) * 8
            elif nxt == IPPROTO_FRAGMENT:
                if ip_end - q < 8:
                    return ERR_NET_TRUNCATED, 0
                fo = u16be(buf, q + 2)
                if fo & 0xFFF9:          # offset != 0 or M flag: a real fragment
                    return ERR_IP_FRAGMENT, 0
                ln = 8
            elif nxt == IPPROTO_AH:
                if ip_end - q < 8:
                    return ERR_NET_TRUNCATED, 0
                ln = (np.int64(buf[q + 1]) + 2) * 4
            else:
                return ERR_NOT_UDP, 0
            if ln > ip_end - q:
                return ERR_NET_TRUNCATED, 0
            nxt = np.int64(buf[q])
            q += ln
        return ERR_NOT_UDP, 0
    return ERR_BAD_IP_HEADER, 0


@njit(cache=True, nogil=True, inline="always")
def udp_payload(buf, off, caplen, linktype):
    """Walk one frame. Returns (status, payload_off, payload_sz, src_port, dst_port)."""
    end = off + caplen
    p = off
    etype = np.int64(-1)
    hint = 0
    if linktype == LINKTYPE_ETHERNET:
        if caplen < ETH_HDR_SZ:
            return ERR_NET_TRUNCATED, 0, 0, 0, 0
        etype = u16be(buf, p + 12)
        p += ETH_HDR_SZ
    elif linktype == LINKTYPE_LINUX_SLL:
        if caplen < SLL_HDR_SZ:
            return ERR_NET_TRUNCATED, 0, 0, 0, 0
        etype = u16be(buf, p + 14)
        p += SLL_HDR_SZ
    elif linktype == LINKTYPE_LINUX_SLL2:
        if caplen < SLL2_HDR_SZ:
            return ERR_NET_TRUNCATED, 0, 0, 0, 0
        etype = u16be(buf, p)
        p += SLL2_HDR_SZ
    elif linktype == LINKTYPE_RAW or linktype == DLT_RAW_BSD_A or linktype == DLT_RAW_BSD_B:
        hint = 0
    elif linktype == LINKTYPE_IPV4:
        hint = 4
    elif linktype == LINKTYPE_IPV6:
        hint = 6
    elif linktype == LINKTYPE_NULL:
        if caplen < NULL_HDR_SZ:
            return ERR_NET_TRUNCATED, 0, 0, 0, 0
        fam = u32le(buf, p)
        if fam > 0xFFFF:                 # written big-endian
            fam = fam >> 24
        if fam == AF_INET:
            hint = 4
        elif fam == AF_INET6_BSD or fam == AF_INET6_FREEBSD or fam == AF_INET6_DARWIN:
            hint = 6
        else:
            return ERR_NOT_IP, 0, 0, 0, 0
        p += NULL_HDR_SZ
    else:
        return ERR_UNKNOWN_LINKTYPE, 0, 0, 0, 0
    if etype >= 0:
        for _ in range(VLAN_DEPTH_MAX):
            if etype == ETHERTYPE_VLAN or etype == ETHERTYPE_QINQ or etype == ETHERTYPE_QINQ_OLD:
                if end - p < VLAN_TAG_SZ:
                    return ERR_NET_TRUNCATED, 0, 0, 0, 0
                etype = u16be(buf, p + 2)
                p += VLAN_TAG_SZ
            else:
                break
        if etype == ETHERTYPE_IPV4:
            hint = 4
        elif etype == ETHERTYPE_IPV6:
            hint = 6
        else:
            return ERR_NOT_IP, 0, 0, 0, 0
    u, ip_end = _ip(buf, p, end, hint)
    if u < 0:
        return u, 0, 0, 0, 0
    if ip_end - u < UDP_HDR_SZ:
        return ERR_NET_TRUNCATED, 0, 0, 0, 0
    sport = u16be(buf, u)
    dport = u16be(buf, u + 2)
    ulen = u16be(buf, u + 4)
    if ulen < UDP_HDR_SZ:
        return ERR_BAD_IP_HEADER, 0, 0, 0, 0
    if ulen > ip_end - u:
        return ERR_NET_TRUNCATED, 0, 0, 0, 0
    return 0, u + UDP_HDR_SZ, ulen - UDP_HDR_SZ, sport, dport


@njit(cache=True, nogil=True, inline="always")
def landed_payload(buf, off, caplen):
    """Walk one LINKTYPE_SOLANA_LANDED frame (workbench/linktypes.py): the transaction follows the
    pseudo-header. Returns (status, payload_off, payload_sz, slot, failed): failed is 1 when
    the transaction landed with an error (any status byte but LANDED_SUCCESS)."""
    if caplen < LANDED_HDR_SZ:
        return ERR_NET_TRUNCATED, 0, 0, np.int64(-1), 0
    slot = np.int64(u64le(buf, off + LANDED_SLOT_OFF))
    failed = 0 if buf[off + LANDED_STATUS_OFF] == LANDED_SUCCESS else 1
    return 0, off + LANDED_HDR_SZ, caplen - LANDED_HDR_SZ, slot, failed


@njit(cache=True, nogil=True, inline="always")
def guess_txn_sig_off(buf, off, caplen, linktype):
    """Where the first signature of a transaction would start in this frame if it is the common
    case (Ethernet, no VLAN tag, IPv4, UDP, fewer than 128 signatures), or -1 if it is not.

    A GUESS for prefetching only: nothing is checked beyond what keeps the read inside the
    frame, so a wrong guess costs one useless prefetch and never a wrong result. (The
    transaction's 1-byte compact-u16 signature count comes first, then the signatures.)
    """
    if linktype != LINKTYPE_ETHERNET or caplen < ETH_HDR_SZ + IPV4_HDR_MIN:
        return -1
    if u16be(buf, off + 12) != ETHERTYPE_IPV4:
        return -1
    p = off + ETH_HDR_SZ + np.int64(buf[off + ETH_HDR_SZ] & 0x0F) * 4 + UDP_HDR_SZ + 1
    if p + 8 > off + caplen:
        return -1
    return p
