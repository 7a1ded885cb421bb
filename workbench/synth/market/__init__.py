"""A market for synthetic captures: tokens, Raydium AMM v4 pools with depth, lending
positions, and swap traffic kept consistent with them, with injected opportunities and
their ground truth (``generate_capture(..., market=True)``, ``workbench generate --market``).

One module per job:

* spec.py: the market of a seed (``MarketSpec``, ``build_market``: tokens, pools, positions);
* baseline_walk.py: the baseline swaps rewritten on the exact pool state in capture order
  (``_walk``, numba), so that the baseline holds no opportunity;
* simulation.py: ``MarketSim``, one capture's market: the injection schedule and the
  competition, the injected and closing swaps, the truth rows;
* truth_rules.py: the contract's detection rules on Python integers (``Detector``), the
  truth's own twin, never the engine's detectors (engine/market/);
* snapshot.py: the engine's market snapshot of the capture (``write_market_snapshot``);
* replay.py: ``replay_truth``, the twin run again on a written capture's bytes (tests).

The output paths and the truth's schema live in synth/outputs.py.
"""
