"""The bundled captures replay to the very Parquet files they gave before the code moved.

``expected_outputs.json`` holds, for every Parquet output of the four bundled captures
(``opportunity_costs.parquet`` aside: it holds wall-clock costs), the file's sha256 and a
digest of its content (schema and every value), taken before issue 14 moved the code into
its new rooms, and taken again once, on purpose, when issue 16 changed the format (LZ4 for
the per-packet files with base58 signatures uncompressed: new bytes, same content; opportunity
ids seeded by the capture's fingerprint and the trigger signature instead of the capture's
full sha256: new ids), and once more when issue 16 changed the per-packet files again
(``tx_features.signature`` raw bytes as fixed_size_binary(64), ``programs`` list<dictionary>,
no compression, non-nullable fields; opportunities unchanged). A refactor must leave both unchanged. The file bytes also depend on the
pyarrow that writes them (its version is in the Parquet footer), so they are compared
when the writing pyarrow is the one the checksums were taken with; the content digest is
compared always.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow
import pyarrow.parquet as pq
import pytest

from conftest import CAPTURES, REPO

EXPECTED = json.loads((Path(__file__).parent / "expected_outputs.json").read_text())

# run name -> the replay's arguments (as the checksums were taken: `workbench replay ... --no-db`)
RUNS = {
    "small": ["small.pcap"],
    "demo": ["demo.pcapng"],
    "market": ["market.pcapng", "--market", "market.pcapng.market"],
    "market-quiet": ["market-quiet.pcapng", "--market", "market-quiet.pcapng.market"],
}


def content_digest(path: Path) -> str:
    t = pq.read_table(path)
    h = hashlib.sha256()
    h.update(str(t.schema).encode())
    for name in t.column_names:
        h.update(name.encode())
        h.update(repr(t.column(name).to_pylist()).encode())
    return h.hexdigest()


@pytest.mark.parametrize("run", sorted(RUNS))
def test_replay_outputs_are_unchanged(run, tmp_path):
    args = [str(CAPTURES / RUNS[run][0])] + [str(CAPTURES / a) if a.endswith(".market") else a
                                              for a in RUNS[run][1:]]
    out = tmp_path / run
    subprocess.run([sys.executable, "-m", "workbench.cli", "replay", *args, "--out", str(out), "--no-db"],
                   check=True, cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL, timeout=900)
    expected = {k.split("/", 1)[1]: v for k, v in EXPECTED["files"].items() if k.split("/", 1)[0] == run}
    written = sorted(p.name for p in out.glob("*.parquet") if p.name != "opportunity_costs.parquet")
    assert written == sorted(expected), f"{run}: Parquet outputs {written}, expected {sorted(expected)}"
    same_writer = pyarrow.__version__ == EXPECTED["pyarrow"]
    for name, want in expected.items():
        assert content_digest(out / name) == want["content"], f"{run}/{name}: content differs"
        if same_writer:
            got = hashlib.sha256((out / name).read_bytes()).hexdigest()
            assert got == want["sha256"], f"{run}/{name}: bytes differ"
