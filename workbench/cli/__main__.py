"""``python -m workbench.cli``: the same command as the ``workbench`` script."""

from .app import main

main()
