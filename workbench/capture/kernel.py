"""System calls and memory-ordering primitives callable from nopython code.

Live sources run their hot loop inside one ``@njit(nogil=True)`` call, so the loop has
to reach the kernel and order its memory accesses without Python:

- ``sys_recvmmsg``, ``sys_usleep``: libc functions called by symbol name through numba
  intrinsics (as ``capture/clock.py`` calls ``clock_gettime``), so every function that
  uses them stays disk-cacheable: no ctypes address is baked into compiled code.
- ``load_acquire_*`` / ``store_release_*``: LLVM atomic loads and stores with acquire and
  release ordering. On x86-64 (TSO: loads are not reordered with loads, stores not with
  stores, and a load may pass only an older store to another address) both compile to a
  plain ``mov``; what they buy there is that the COMPILER keeps them in order and never
  hoists a load out of a polling loop. On weaker machines (aarch64) LLVM emits
  ``ldar`` / ``stlr``, so the code stays correct there too.

Callers check bounds: these read and write at the offset given. Arrays passed here are
C-contiguous.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

MSG_DONTWAIT = 0x40          # <sys/socket.h>: do not block (this call only)
MSG_TRUNC = 0x20             # <sys/socket.h>: recv* returns the datagram's real length

# <asm-generic/socket.h>: socket options of level SOL_SOCKET the capture sockets set
SOL_SOCKET = 1
SO_RCVBUF = 8
SO_ATTACH_FILTER = 26        # attach a classic BPF program (struct sock_fprog)
SO_SNDBUFFORCE = 32          # as SO_SNDBUF, past net.core.wmem_max (CAP_NET_ADMIN)
SO_RCVBUFFORCE = 33          # as SO_RCVBUF, past net.core.rmem_max (CAP_NET_ADMIN)
SO_TIMESTAMPNS = 35          # SCM_TIMESTAMPNS control message: struct timespec (CLOCK_REALTIME)
SO_RXQ_OVFL = 40             # control message: u32 datagrams this socket dropped so far

_i8p = ir.IntType(8).as_pointer()
_i32 = ir.IntType(32)
_i64 = ir.IntType(64)


def _elem_ptr(context, builder, aryty, ary_val, idx):
    """Pointer to element ``idx`` of a 1-d array (no bounds check)."""
    ary = context.make_array(aryty)(context, builder, ary_val)
    return cgutils.get_item_pointer(context, builder, aryty, ary, [idx], wraparound=False, boundscheck=False)


def _data_ptr(context, builder, aryty, ary_val):
    ary = context.make_array(aryty)(context, builder, ary_val)
    return builder.bitcast(ary.data, _i8p)


@intrinsic
def sys_recvmmsg(typingctx, fd, msgvec, vlen, flags):
    """``recvmmsg(fd, &msgvec[0], vlen, flags, NULL)``: messages received, or -1 (errno unread).

    ``msgvec`` is a uint8 array holding ``vlen`` ``struct mmsghdr`` (64 bytes each on
    x86-64) whose pointers (name, iov, control) the caller set up.
    """
    sig = types.int64(types.int64, msgvec, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(_i32, [_i32, _i8p, _i32, _i32, _i8p])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "recvmmsg")
        ptr = _data_ptr(context, builder, signature.args[1], args[1])
        r = builder.call(fn, [builder.trunc(args[0], _i32), ptr, builder.trunc(args[2], _i32),
                              builder.trunc(args[3], _i32), ir.Constant(_i8p, None)])
        return builder.sext(r, _i64)

    return sig, codegen


@intrinsic
def sys_usleep(typingctx, us):
    """``usleep(us)``: sleep at least ``us`` microseconds (plus the thread's timer slack)."""
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(_i32, [_i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "usleep")
        r = builder.call(fn, [builder.trunc(args[0], _i32)])
        return builder.sext(r, _i64)

    return sig, codegen


@intrinsic
def load_acquire_u32(typingctx, buf, off):
    """The little-endian u32 at byte ``off`` of uint8 ``buf`` (4-byte aligned), load-acquire."""
    sig = types.int64(buf, types.int64)

    def codegen(context, builder, signature, args):
        p = builder.bitcast(_elem_ptr(context, builder, signature.args[0], args[0], args[1]), _i32.as_pointer())
        v = builder.load_atomic(p, "acquire", 4)
        return builder.zext(v, _i64)

    return sig, codegen


@intrinsic
def store_release_u32(typingctx, buf, off, value):
    """Store ``value`` as the u32 at byte ``off`` of uint8 ``buf`` (4-byte aligned), store-release."""
    sig = types.void(buf, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        p = builder.bitcast(_elem_ptr(context, builder, signature.args[0], args[0], args[1]), _i32.as_pointer())
        builder.store_atomic(builder.trunc(args[2], _i32), p, "release", 4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def load_acquire_i64(typingctx, arr, idx):
    """``arr[idx]`` of an int64 array, load-acquire."""
    sig = types.int64(arr, types.int64)

    def codegen(context, builder, signature, args):
        p = _elem_ptr(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(p, "acquire", 8)

    return sig, codegen


@intrinsic
def store_release_i64(typingctx, arr, idx, value):
    """``arr[idx] = value`` of an int64 array, store-release."""
    sig = types.void(arr, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        p = _elem_ptr(context, builder, signature.args[0], args[0], args[1])
        builder.store_atomic(args[2], p, "release", 8)
        return context.get_dummy_value()

    return sig, codegen
