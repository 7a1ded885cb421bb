"""Offline model work (issue #4): labels from replays, XGBoost training, Treelite/TL2cgen compilation.

model/ reads engine outputs (run folders) and writes the tree arrays ``engine/score/``
evaluates inside the hot loop. It may import engine/, never the reverse.
"""
