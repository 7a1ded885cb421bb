"""The one table of packet status codes, shared by every wire decoder.

Kernels never raise: a decoder returns the next offset (>= 0) or one of the negative
codes below, and the engine stores one code per packet. ``STATUS_NAMES`` maps a code to
the name used in summaries, Parquet and ClickHouse.
"""

from __future__ import annotations

# --- accepted -------------------------------------------------------------------------------
TXN = 0                  # a transaction decoded and passed sanitize
SHRED = 1                # a shred whose headers decoded
DUPLICATE = 2            # a transaction (first signature) or data shred (slot, index) seen already (dropped)

# --- transaction rejects (wire/txn.py), after the validator's sanitize ------------------------
ERR_TRUNCATED = -1            # the transaction ends before a field it declares
ERR_TOO_LONG = -2             # payload > PACKET_DATA_SIZE (1232 bytes)
ERR_BAD_SHORT_VEC = -3        # compact-u16 length is non-minimal, > 3 bytes or > 0xffff
ERR_INDEX_OUT_OF_RANGE = -4   # program id / account index outside the keys, or program is the fee payer
ERR_TRAILING_BYTES = -5       # bytes left after the last field
ERR_SIGNATURE_COUNT = -6      # number of signatures != header's num_required_signatures
ERR_BAD_HEADER = -7           # readonly signed >= required, or required + readonly unsigned > keys
ERR_UNSUPPORTED_VERSION = -8  # versioned message other than v0
ERR_EMPTY_LOOKUP = -9         # an address table lookup with no indexes
ERR_TOO_MANY_ACCOUNTS = -10   # static + loaded accounts > 256
ERR_EMPTY = -11               # zero-byte UDP payload
ERR_OUTPUT_FULL = -12         # engine output buffers full (internal: the batch resumes here)

# --- network walk rejects (wire/net.py) ---------------------------------------------------------
ERR_NET_TRUNCATED = -20       # the frame ends inside a link, IP or UDP header
ERR_NOT_IP = -21              # not IPv4/IPv6 (ARP, LLDP, ...)
ERR_NOT_UDP = -22             # IP but not UDP (TCP, ICMP, ...)
ERR_IP_FRAGMENT = -23         # an IP fragment: counted and skipped, never reassembled
ERR_UNKNOWN_LINKTYPE = -24    # link type the walker does not know
ERR_BAD_IP_HEADER = -25       # IHL < 5, version mismatch, lengths that contradict each other
ERR_NOT_SOLANA = -26          # UDP to a port configured as never Solana (DNS, NTP, ...)

# --- shred and entry-batch rejects (wire/shred.py, wire/entries.py, engine/deshred.py) ----------
ERR_BAD_SHRED = -30           # shred port, but no known variant or a size that contradicts it
ERR_BAD_SHRED_VARIANT = -31   # variant byte is no known shred kind, or its merkle proof leaves no room for data
ERR_BAD_SHRED_SIZE = -32      # packet size wrong for the variant, or data header size outside [88, 88 + capacity]
ERR_BAD_SHRED_INDEX = -33     # index >= 32768, or a data shred's fec_set_index > index
ERR_BAD_SHRED_SLOT = -34      # slot >= 2**63, parent_offset > slot, or parent_offset 0 in a slot > 0
ERR_BAD_SHRED_FLAGS = -35     # data flags: SLOT_COMPLETE without DATA_COMPLETE
ERR_BAD_CODE_HEADER = -36     # code header: no data or code shreds, > 256 code shreds, position >= code count
ERR_SHRED_DROPPED = -37       # a valid data shred reassembly could not keep (index past capacity, slot too old)
ERR_BAD_ENTRY_COUNT = -38     # entry batch: an entry or transaction count the bytes left cannot hold

STATUS_NAMES = {
    TXN: "transaction",
    SHRED: "shred",
    DUPLICATE: "duplicate",
    ERR_TRUNCATED: "truncated",
    ERR_TOO_LONG: "too_long",
    ERR_BAD_SHORT_VEC: "bad_short_vec",
    ERR_INDEX_OUT_OF_RANGE: "index_out_of_range",
    ERR_TRAILING_BYTES: "trailing_bytes",
    ERR_SIGNATURE_COUNT: "signature_count_mismatch",
    ERR_BAD_HEADER: "bad_header",
    ERR_UNSUPPORTED_VERSION: "unsupported_version",
    ERR_EMPTY_LOOKUP: "empty_lookup_table",
    ERR_TOO_MANY_ACCOUNTS: "too_many_accounts",
    ERR_EMPTY: "empty_payload",
    ERR_OUTPUT_FULL: "output_full",
    ERR_NET_TRUNCATED: "net_truncated",
    ERR_NOT_IP: "not_ip",
    ERR_NOT_UDP: "not_udp",
    ERR_IP_FRAGMENT: "ip_fragment",
    ERR_UNKNOWN_LINKTYPE: "unknown_linktype",
    ERR_BAD_IP_HEADER: "bad_ip_header",
    ERR_NOT_SOLANA: "not_solana",
    ERR_BAD_SHRED: "bad_shred",
    ERR_BAD_SHRED_VARIANT: "bad_shred_variant",
    ERR_BAD_SHRED_SIZE: "bad_shred_size",
    ERR_BAD_SHRED_INDEX: "bad_shred_index",
    ERR_BAD_SHRED_SLOT: "bad_shred_slot",
    ERR_BAD_SHRED_FLAGS: "bad_shred_flags",
    ERR_BAD_CODE_HEADER: "bad_code_header",
    ERR_SHRED_DROPPED: "shred_dropped",
    ERR_BAD_ENTRY_COUNT: "bad_entry_count",
}

STATUS_MIN = -40              # codes live in [STATUS_MIN, STATUS_MAX): counters index code - STATUS_MIN
STATUS_MAX = 8
STATUS_SLOTS = STATUS_MAX - STATUS_MIN

def status_name(code: int) -> str:
    return STATUS_NAMES.get(int(code), f"code_{int(code)}")


def counts_by_name(counter) -> dict[str, int]:
    """Turn a per-code counter array (index code - STATUS_MIN) into {name: count}, nonzero only."""
    out = {}
    for i, c in enumerate(counter):
        if c:
            out[status_name(i + STATUS_MIN)] = int(c)
    return out
