"""Link types and the frame headers that the sources write and the wire walker reads.

One home below both: the sources (capture/: afpacket puts a VLAN tag back into a frame,
udp.py writes an IPv4 + UDP header in front of a datagram, block_file.py writes the landed
pseudo-header) and wire/net.py, which walks those bytes, read the same numbers here, so the
wire never imports the sources that feed it.
"""

# Link types (tcpdump.org/linktypes.html): the ones the wire walker (wire/net.py) understands.
LINKTYPE_NULL = 0          # BSD loopback: 4-byte address family in the writer's byte order
LINKTYPE_ETHERNET = 1      # IEEE 802.3 Ethernet, optionally 802.1Q / 802.1ad tagged
LINKTYPE_RAW = 101         # raw IPv4 or IPv6, version from the first nibble (also 12/14 on some BSDs' DLT_RAW)
LINKTYPE_LINUX_SLL = 113   # Linux "cooked" capture v1: 16-byte header, protocol at 14
LINKTYPE_IPV4 = 228        # raw IPv4 only
LINKTYPE_IPV6 = 229        # raw IPv6 only
LINKTYPE_LINUX_SLL2 = 276  # Linux "cooked" capture v2: 20-byte header, protocol at 0
DLT_RAW_BSD_A = 12         # raw IP as some BSDs number DLT_RAW
DLT_RAW_BSD_B = 14
# One landed Solana transaction (a block backfilled from RPC, capture/block_file.py): LINKTYPE_USER0,
# which tcpdump.org reserves for private use. The frame is a LANDED_HDR_SZ pseudo-header, then the
# transaction's wire bytes (what getBlock's base64 decodes to). Pseudo-header, little-endian:
#   +0  u64 slot the transaction landed in
#   +8  u32 index of the transaction in its block, [0, transactions in the block)
#   +12 u8  landed status: LANDED_SUCCESS, or LANDED_FAILED (meta.err was not null)
#   +13 3 bytes zero (reserved)
LINKTYPE_SOLANA_LANDED = 147
LANDED_HDR_SZ = 16         # bytes of the pseudo-header before the transaction
LANDED_SLOT_OFF = 0
LANDED_INDEX_OFF = 8
LANDED_STATUS_OFF = 12
LANDED_SUCCESS = 0
LANDED_FAILED = 1

# Header fields the capture side writes (afpacket.py puts a VLAN tag back into a frame,
# udp.py writes an IPv4 + UDP header in front of a datagram) and wire/net.py reads.
ETHERTYPE_VLAN = 0x8100    # 802.1Q customer tag (ETH_P_8021Q)
VLAN_TAG_SZ = 4            # bytes: TPID + TCI (the inner ethertype follows)
IPV4_HDR_MIN = 20          # bytes: an IPv4 header without options
UDP_HDR_SZ = 8             # bytes
