"""Synthetic captures with ground truth: real Solana wire transactions (built by solders) in
Ethernet/IPv4/UDP frames, plus the bad packets a decoder must reject.

``generate_capture`` (generate.py) is the entry point; traffic/ builds and varies the
transactions, frame.py frames them and makes the bad packets, market/ (``market=True``)
builds a market, keeps the swaps consistent with it and injects opportunities with truth;
outputs.py names the files written beside a capture and their schemas. run_folder.py
writes synthetic run folders (what a replay writes) for the training tests.
Layering: synth sits beside the data flow; it writes captures through ``capture/``, names
statuses from ``wire/status.py`` and well-known keys from ``wire/keys.py``, takes the exact
AMM maths and the snapshot writer from ``engine/`` (never its detectors), and nothing in the
flow imports it.
"""

from .frame import BAD_KIND_SHARES, KIND_EXPECTED, KIND_NAMES
from .generate import GenerateResult, generate_capture
from .market.replay import replay_truth
from .outputs import market_path, opp_truth_schema, opportunities_truth_path, truth_path_for, truth_schema
from .traffic.shapes import SHAPE_NAMES, SHAPES

__all__ = ["generate_capture", "GenerateResult", "truth_path_for", "truth_schema", "KIND_NAMES", "KIND_EXPECTED",
           "BAD_KIND_SHARES", "SHAPES", "SHAPE_NAMES", "market_path", "opportunities_truth_path",
           "opp_truth_schema", "replay_truth"]
