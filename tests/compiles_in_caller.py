"""Run the ``workbench`` command (argv after the output file) and write to the output file, one a
line, the qualified name of every function numba compiled in THIS process (not in its compile
workers): a first run's caller should load the engine's kernels its workers compiled.

    python tests/compiles_in_caller.py OUT_FILE replay CAPTURE ...
"""

from __future__ import annotations

import sys
from pathlib import Path

from numba.core import event


class _Names(event.Listener):
    def __init__(self):
        self.names: list[str] = []

    def on_start(self, ev):
        f = getattr((ev.data or {}).get("dispatcher"), "py_func", None)
        if f is not None:
            self.names.append(f"{f.__module__}:{f.__qualname__}")

    def on_end(self, ev):
        pass


def main() -> None:
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    names = _Names()
    event.register("numba:compile", names)
    from workbench.cli.app import app       # the command itself (the script's main() ends the process)
    sys.argv = ["workbench"] + argv
    try:
        app()
    except SystemExit as e:
        if e.code:
            raise
    finally:
        out.write_text("\n".join(names.names) + "\n")


if __name__ == "__main__":
    main()
