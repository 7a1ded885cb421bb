"""The in-engine tree scorer: a tree ensemble as flat numpy arrays and one jitted evaluator.

``model/compile.py`` extracts the trees of a Treelite model into ``models/NAME/trees.npz``;
the engine loads those arrays and scores one feature row from inside ``process_batch``
(engine/ loads model ARRAYS, never model code). One job per module:

* ``tree_model.py``: ``TreeModel`` (the arrays of the perfect, pointer and lane layouts),
  its constants, ``empty_tree_model``, ``scratch_items``, ``lane_groups``;
* ``model_folder.py``: ``models/NAME``'s ``schema.json`` and ``trees.npz`` read and checked
  against the engine, ``load_tree_model``;
* ``layouts.py``: which layout, and its arrays (``tree_model_from_arrays``);
* ``kernels.py``: the jitted evaluator (``score_row_buf``, ``score_row``, ``score_rows_buf``,
  ``score_rows``, ``prefetch_model``);
* ``lanes.py``: the lane layout's LLVM IR kernels (64 trees per AVX-512 byte vector).
"""
