"""The ``workbench`` command: thin faces that parse flags, call the runner and print.

app.py (replay, generate, inspect, send, live, and the Typer app), db.py (``workbench db``),
model.py (``workbench train`` and ``compile``), output.py (the consoles, ``fail``).
"""

from .app import app, main

__all__ = ["app", "main"]
