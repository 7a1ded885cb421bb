"""Regenerate the Python stubs of Yellowstone's Geyser protocol from the protos beside them.

    python -m workbench.chain.geyser.regenerate          # rewrite the committed modules
    python -m workbench.chain.geyser.regenerate --check  # exit 1 if they differ from fresh ones

The stubs are committed (grpcio-tools is a dev dependency only) and
tests/test_geyser_stubs.py checks that they equal freshly generated ones. protoc writes
absolute imports (``import solana_storage_pb2``); they are made package-relative here so
that the modules live in this package, not on sys.path.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_DIR = HERE / "proto"
PROTOS = ("geyser.proto", "solana-storage.proto")
MODULES = ("geyser_pb2.py", "geyser_pb2_grpc.py", "solana_storage_pb2.py")


def generate() -> dict[str, str]:
    """{module file name: its text}, freshly generated from PROTO_DIR."""
    import grpc_tools
    from grpc_tools import protoc
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    with tempfile.TemporaryDirectory() as out:
        rc = protoc.main(["grpc_tools.protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={out}",
                          f"--grpc_python_out={out}", *(str(PROTO_DIR / p) for p in PROTOS)])
        if rc != 0:
            raise SystemExit(f"protoc failed ({rc}) on {PROTO_DIR}")
        texts = {}
        for name in MODULES:
            text = (Path(out) / name).read_text()
            text = re.sub(r"^import (geyser_pb2|solana_storage_pb2) as", r"from . import \1 as", text, flags=re.M)
            text = re.sub(r"^from (geyser_pb2|solana_storage_pb2) import \*", r"from .\1 import *", text, flags=re.M)
            texts[name] = text
        return texts


def main(argv: list[str]) -> int:
    texts = generate()
    if "--check" in argv:
        stale = [n for n, t in texts.items() if not (HERE / n).exists() or (HERE / n).read_text() != t]
        if stale:
            print(f"stale generated stubs: {', '.join(stale)} (run python -m workbench.chain.geyser.regenerate)")
            return 1
        return 0
    for name, text in texts.items():
        (HERE / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
