"""A jitted kernel called again and again with arguments of the same types, without numba's
dispatch at each call.

Numba's dispatcher picks the compiled version for a call by a fingerprint of every argument's
type, made anew at each call. The engine's arguments are named tuples of some ninety arrays (the
state, the reassembly, the output rows, the market): their fingerprints spell out every field's
name and every record dtype, and the dispatch costs several times what the compiled code's own
entry (unboxing the arrays) does, with the GIL held. A paced replay calls ``process_batch`` up to a
thousand times a second, and a server's event loop waits for the GIL meanwhile
(``benchmarks/bench_dispatch.py`` measures both ways).

``SteadyCall`` lets the dispatcher choose once, then calls that version's entry point as long as
each argument is either an object a dispatched call passed (kept alive here, so its ``id`` stays
its own; the engine's tuples are immutable and their arrays keep their dtype, rank, layout and
writability) or has the same fingerprint, by numba's own function, as the dispatched call's
argument in its place (the batch, made anew at each call; the start index). Anything else goes
through the dispatcher again, which compiles or refuses it as it always would, and is learnt.
Where numba lacks what this uses (its internals may change), every call is dispatched.

For a kernel of a few plain arrays numba's dispatch is cheaper than this check in Python: it pays
only where the arguments are large named tuples, as the engine's are.
"""

from __future__ import annotations

try:                                    # numba's own C fingerprint (the dispatcher's cache key)
    from numba._dispatcher import compute_fingerprint as _fingerprint
except ImportError:                     # pragma: no cover - a numba without it: always dispatch
    _fingerprint = None

# objects kept per argument position: the output sets a replay cycles through (engine_run.py) fit
KNOWN_MAX = 16
# dispatched calls learnt from at most: learning types every argument in Python (milliseconds for the
# engine's), which a caller whose types keep changing, or that numba runs by conversion, must not pay
# at every call
LEARN_MAX = 16


class SteadyCall:
    """``SteadyCall(dispatcher)(*args)``: the same result as ``dispatcher(*args)``."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self._entry = None              # the compiled version's entry point, once learnt
        self._version = None
        self._known: list[dict[int, object]] = []     # per position: id -> a dispatched call's argument
        self._prints: list[bytes | None] = []         # per position: the dispatched argument's fingerprint
        self.dispatched = 0             # calls that went through the dispatcher (tests, benchmarks)

    def __call__(self, *args):
        entry = self._entry
        if entry is not None and len(args) == len(self._prints):
            for a, known, fp in zip(args, self._known, self._prints):
                if id(a) not in known and (fp is None or _print(a) != fp):
                    break
            else:
                return entry(*args)
        result = self.dispatcher(*args)
        self.dispatched += 1
        self._learn(args)
        return result

    def _learn(self, args: tuple) -> None:
        """After a dispatched call: the version it ran, and its arguments as known ones."""
        if _fingerprint is None or self.dispatched > LEARN_MAX:
            return
        try:
            types = tuple(self.dispatcher.typeof_pyval(a) for a in args)
            version = self.dispatcher.overloads.get(types)
            entry = version.entry_point if version is not None else None
        except AttributeError:          # pragma: no cover - numba's internals moved: always dispatch
            version = entry = None
        if entry is None:               # (numba ran a version of other types, by conversion)
            self._entry, self._version = None, None
            return
        if version is not self._version:
            self._entry, self._version = entry, version
            self._known = [{} for _ in args]
            self._prints = [_print(a) for a in args]
        for a, known in zip(args, self._known):
            if len(known) < KNOWN_MAX:
                known[id(a)] = a


def _print(a) -> bytes | None:
    """numba's fingerprint of ``a``'s type; None where numba has none (such an argument must be a
    known object)."""
    try:
        return _fingerprint(a)
    except Exception:       # noqa: BLE001 - numba raises for types it does not fingerprint
        return None
