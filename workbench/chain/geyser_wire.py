"""gRPC message framing and just enough protobuf of a Yellowstone ``SubscribeUpdate`` (jitted).

A gRPC response body is a run of length-prefixed messages (gRPC over HTTP/2, "Length-Prefixed-
Message"): 1 byte compressed flag, 4 bytes big-endian length, then the message. HTTP/2 DATA
frames cut that run anywhere, so ``walk_updates`` reads what is complete in the bytes it is
given and returns how far it got: the caller keeps the rest (a carry-over) for the next chunk.

Of each ``SubscribeUpdate`` (chain/geyser/proto/geyser.proto) only the ``account`` arm of
``update_oneof`` is read: ``SubscribeUpdateAccount{account: SubscribeUpdateAccountInfo{pubkey,
owner, data}, slot}``, as offsets into the chunk (nothing is copied, no object is made per
message). Every other field (filters, ping, pong, slot, transaction, created_at, lamports,
write_version, ...) is skipped by its wire type, so a server that adds fields or oneof arms
still reads. A compressed message (the client asks for identity only), a message longer than
``MESSAGE_MAX_SZ`` or protobuf that does not parse is an error code (``ERR_*``) with the byte
offset of the message in the chunk; the caller names the endpoint and the stream offset.
"""

from __future__ import annotations

import numpy as np
from numba import njit

GRPC_PREFIX_SZ = 5              # compressed flag (u8) + message length (u32 big-endian)
MESSAGE_MAX_SZ = 64 << 20       # bytes; an account is at most 10 MiB, so a longer message is not one

# protobuf wire types
WT_VARINT, WT_I64, WT_LEN, WT_I32 = 0, 1, 2, 5

# field numbers, geyser.proto
F_UPDATE_ACCOUNT = 2            # SubscribeUpdate.account (update_oneof)
F_ACCOUNT_INFO = 1              # SubscribeUpdateAccount.account
F_ACCOUNT_SLOT = 2              # SubscribeUpdateAccount.slot
F_INFO_PUBKEY = 1               # SubscribeUpdateAccountInfo.pubkey
F_INFO_OWNER = 3                # SubscribeUpdateAccountInfo.owner
F_INFO_DATA = 6                 # SubscribeUpdateAccountInfo.data

# error codes (0: none)
ERR_COMPRESSED = 1              # compressed flag set: the client asked for identity encoding
ERR_TOO_LONG = 2                # message length above MESSAGE_MAX_SZ
ERR_PROTOBUF = 3                # a varint, tag or length that does not fit the message
ERR_NAMES = {ERR_COMPRESSED: "a compressed gRPC message (the client asks for identity only)",
             ERR_TOO_LONG: f"a gRPC message longer than {MESSAGE_MAX_SZ} bytes",
             ERR_PROTOBUF: "a SubscribeUpdate that is not valid protobuf"}

# columns of the per-update offsets ``walk_updates`` writes (int64[N, U_COLS])
U_MSG_OFF, U_PUBKEY_OFF, U_PUBKEY_SZ, U_OWNER_OFF, U_OWNER_SZ, U_DATA_OFF, U_DATA_SZ, U_SLOT = range(8)
U_COLS = 8


def new_updates(n: int) -> np.ndarray:
    """Room for ``n`` account updates of one chunk."""
    return np.zeros((n, U_COLS), np.int64)


@njit(cache=True, nogil=True, inline="always")
def _varint(buf, off, end):
    """(value, next offset); next offset -1 when the varint runs past ``end`` or over 10 bytes."""
    v = np.uint64(0)
    shift = 0
    while off < end and shift < 64:
        b = buf[off]
        off += 1
        v |= np.uint64(b & 0x7F) << np.uint64(shift)
        if b < 0x80:
            return v, off
        shift += 7
    return v, -1


@njit(cache=True, nogil=True)
def _skip(buf, off, end, wt):
    """Offset after a field's value of wire type ``wt``; -1 when it does not fit."""
    if wt == WT_VARINT:
        _, off = _varint(buf, off, end)
        return off
    if wt == WT_I64:
        return off + 8 if 8 <= end - off else -1
    if wt == WT_I32:
        return off + 4 if 4 <= end - off else -1
    if wt == WT_LEN:
        n, off = _varint(buf, off, end)
        if off < 0 or n > np.uint64(end - off):
            return -1
        return off + np.int64(n)
    return -1                   # groups (3, 4) and 6, 7 are not in geyser.proto


@njit(cache=True, nogil=True)
def _len_field(buf, off, end):
    """(start, size) of a length-delimited value at ``off``; start -1 when it does not fit."""
    n, off = _varint(buf, off, end)
    if off < 0 or n > np.uint64(end - off):
        return -1, 0
    return off, np.int64(n)


@njit(cache=True, nogil=True)
def _account_info(buf, off, end, out, k):
    """SubscribeUpdateAccountInfo in [off, end) into row ``k`` of ``out``; False when it does not parse."""
    while off < end:
        key, off = _varint(buf, off, end)
        if off < 0:
            return False
        f, wt = np.int64(key >> np.uint64(3)), np.int64(key & np.uint64(7))
        if wt == WT_LEN and (f == F_INFO_PUBKEY or f == F_INFO_OWNER or f == F_INFO_DATA):
            s, n = _len_field(buf, off, end)
            if s < 0:
                return False
            col = U_PUBKEY_OFF if f == F_INFO_PUBKEY else (U_OWNER_OFF if f == F_INFO_OWNER else U_DATA_OFF)
            out[k, col] = s
            out[k, col + 1] = n
            off = s + n
        else:
            off = _skip(buf, off, end, wt)
            if off < 0:
                return False
    return True


@njit(cache=True, nogil=True)
def _update(buf, off, end, out, k):
    """One SubscribeUpdate in [off, end): 1 (an account update, row ``k`` written), 0 (another
    kind, skipped) or -1 (not valid protobuf)."""
    found = 0
    while off < end:
        key, off = _varint(buf, off, end)
        if off < 0:
            return -1
        f, wt = np.int64(key >> np.uint64(3)), np.int64(key & np.uint64(7))
        if f == F_UPDATE_ACCOUNT and wt == WT_LEN:
            s, n = _len_field(buf, off, end)
            if s < 0:
                return -1
            for c in range(U_COLS):
                out[k, c] = 0
            a, a_end = s, s + n
            while a < a_end:
                akey, a = _varint(buf, a, a_end)
                if a < 0:
                    return -1
                af, awt = np.int64(akey >> np.uint64(3)), np.int64(akey & np.uint64(7))
                if af == F_ACCOUNT_INFO and awt == WT_LEN:
                    i, m = _len_field(buf, a, a_end)
                    if i < 0 or not _account_info(buf, i, i + m, out, k):
                        return -1
                    a = i + m
                elif af == F_ACCOUNT_SLOT and awt == WT_VARINT:
                    v, a = _varint(buf, a, a_end)
                    if a < 0:
                        return -1
                    out[k, U_SLOT] = np.int64(v)
                else:
                    a = _skip(buf, a, a_end, awt)
                    if a < 0:
                        return -1
            found = 1
            off = a_end
        else:
            off = _skip(buf, off, end, wt)
            if off < 0:
                return -1
    return found


@njit(cache=True, nogil=True)
def walk_updates(buf, end, out):
    """Walk the complete gRPC messages of ``buf[:end]``; write one row of ``out`` (U_*) per account
    update, until ``out`` is full. Returns (account updates written, bytes consumed (the start of
    the first message not read), messages read, error code (ERR_*, 0: none), offset of the failing
    message). The caller keeps ``buf[consumed:end]`` for the next chunk; after an error, the stream
    cannot be resynchronised (the framing is lost) and is reopened."""
    off = 0
    k = 0
    msgs = 0
    cap = out.shape[0]
    while k < cap and GRPC_PREFIX_SZ <= end - off:
        flag = buf[off]
        n = (np.int64(buf[off + 1]) << 24) | (np.int64(buf[off + 2]) << 16) | (np.int64(buf[off + 3]) << 8) \
            | np.int64(buf[off + 4])
        if flag != 0:
            return k, off, msgs, ERR_COMPRESSED, off
        if n > MESSAGE_MAX_SZ:
            return k, off, msgs, ERR_TOO_LONG, off
        if n > end - off - GRPC_PREFIX_SZ:
            break                   # the rest of this message is in the next DATA frame
        s = off + GRPC_PREFIX_SZ
        r = _update(buf, s, s + n, out, k)
        if r < 0:
            return k, off, msgs, ERR_PROTOBUF, off
        if r == 1:
            out[k, U_MSG_OFF] = off
            k += 1
        msgs += 1
        off = s + n
    return k, off, msgs, 0, 0


def grpc_frame(message: bytes) -> bytes:
    """One uncompressed gRPC Length-Prefixed-Message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


# --- HTTP/2 DATA frames of the response, taken without the h2 library (RFC 9113 section 4.1, 6.1) ---------
H2_HEADER_SZ = 9                # frame header: length u24, type u8, flags u8, stream id u31 (big-endian)
H2_DATA = 0x0                   # frame type DATA
H2_WINDOW_UPDATE = 0x8          # frame type WINDOW_UPDATE
H2_END_STREAM = 0x1             # DATA flag: the last frame of the stream (h2 must see it)
H2_PADDED = 0x8                 # DATA flag: a pad length byte first, that many pad bytes last
# why ``take_data_frames`` stopped
TAKE_NEED_MORE = 0              # the next frame is not complete in the bytes given
TAKE_FOR_H2 = 1                 # the next frame is for the h2 library (not a plain DATA frame of the stream)
TAKE_FULL = 2                   # the body buffer has no room for the next frame's payload


@njit(cache=True, nogil=True)
def take_data_frames(raw, n, stream_id, body, body_end):
    """Copy the payloads of the DATA frames of ``stream_id`` at the front of ``raw[:n]`` into
    ``body[body_end:]``: the response body, with the GIL released, however many frames a socket
    read holds. Stops at a frame that is anything else (settings, ping, window update, headers,
    trailers, a DATA frame ending the stream or of another stream, a bad pad length): the caller
    hands that one to the h2 library. Returns (bytes of ``raw`` taken, new body end, flow-
    controlled bytes taken (payload and padding, what WINDOW_UPDATE must give back), TAKE_*)."""
    off = 0
    flow = 0
    while True:
        if n - off < H2_HEADER_SZ:
            return off, body_end, flow, TAKE_NEED_MORE
        ln = (np.int64(raw[off]) << 16) | (np.int64(raw[off + 1]) << 8) | np.int64(raw[off + 2])
        typ, flags = raw[off + 3], raw[off + 4]
        sid = ((np.int64(raw[off + 5]) & 0x7F) << 24) | (np.int64(raw[off + 6]) << 16) \
            | (np.int64(raw[off + 7]) << 8) | np.int64(raw[off + 8])
        if typ != H2_DATA or sid != stream_id or (flags & H2_END_STREAM) != 0:
            return off, body_end, flow, TAKE_FOR_H2
        if n - off - H2_HEADER_SZ < ln:
            return off, body_end, flow, TAKE_NEED_MORE
        s = off + H2_HEADER_SZ
        e = s + ln
        if flags & H2_PADDED:
            if ln < 1 or np.int64(raw[s]) >= ln:
                return off, body_end, flow, TAKE_FOR_H2        # a protocol error: h2 names it
            e -= np.int64(raw[s])
            s += 1
        if e - s > body.shape[0] - body_end:
            return off, body_end, flow, TAKE_FULL
        body[body_end:body_end + e - s] = raw[s:e]
        body_end += e - s
        flow += ln
        off += H2_HEADER_SZ + ln


def window_update(stream_id: int, increment: int) -> bytes:
    """One HTTP/2 WINDOW_UPDATE frame."""
    return (4).to_bytes(3, "big") + bytes((H2_WINDOW_UPDATE, 0)) + stream_id.to_bytes(4, "big") \
        + increment.to_bytes(4, "big")
