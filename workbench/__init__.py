"""solana-mev-workbench: one numba engine over recorded captures or a tuned NIC.

Layers point down (see ARCHITECTURE.md): capture -> wire -> engine (metrics beneath)
-> model (offline) -> store, api -> runner, cli, panel_apps.
"""

__version__ = "0.1.0"
