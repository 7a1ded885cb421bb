"""The consoles every ``workbench`` command prints to, and the one way a command fails."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def fail(e: Exception, code: int = 2):
    """Print ``error: <message>`` on stderr (the message printed as is, never read as markup) and exit."""
    err_console.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)
