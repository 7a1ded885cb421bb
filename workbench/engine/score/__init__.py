# SHIM(issue 14): re-exports for importers not yet moved; removed at integration
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

from .kernels import (expand_row, prefetch_model, rank_row, score_margin_buf, score_row, score_row_buf,  # noqa: F401
                      score_rows, score_rows_buf)
from .lanes import HAVE_VBMI, LANES, LANES_DEPTH, NODE, PACK  # noqa: F401
from .layouts import lanes_fit, tree_model_from_arrays  # noqa: F401
from .model_folder import (SCHEMA_FILE, TREES_FILE, TREES_FORMAT_VERSION, check_schema,  # noqa: F401
                           engine_features, load_tree_model, read_schema, read_trees)
from .tree_model import (CUT_BLOCK, CUT_ROW, CUTS, LAYOUT_LANES, LAYOUT_PERFECT, LAYOUT_POINTER,  # noqa: F401
                         LAYOUTS, MAX_FEATURES, PACKED_TAIL_MAX, PERFECT_DEPTH_MAX, POST_IDENTITY, POST_SIGMOID,
                         POSTPROCESSORS, SCRATCH_MIN_ITEMS, TreeModel, empty_tree_model, f32_key, lane_groups,
                         pack_nodes, scratch_items)
from ...errors import ModelError  # noqa: F401
