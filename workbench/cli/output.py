"""The consoles every ``workbench`` command prints to, the one way a command fails, and the
checks of the files a command writes.

Values from the store, files and error messages reach the console as ``Text`` (``plain``)
or through ``escape``: never read as markup, so ``[/bold]`` in a value is printed as it is
instead of raising, and ``[red]x[/red]`` is not shown as a red ``x`` (the data altered).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from ..errors import ConfigError

console = Console()
err_console = Console(stderr=True)


def plain(value, style: str = "") -> Text:
    """``value`` as text printed exactly as it is (rich markup in it stays literal)."""
    return Text(str(value), style=style)


def fail(e: Exception, code: int = 2):
    """Print ``error: <message>`` on stderr (the message printed as is, never read as markup) and exit."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", str(e)), soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def warn(message: str, label: str = "") -> None:
    """A message on stderr in yellow (``label`` bold before it), printed as is."""
    parts = [(label, "bold yellow"), " "] if label else []
    err_console.print(Text.assemble(*parts, (str(message), "yellow")), soft_wrap=True, highlight=False)


def out_file(path: Path, flag: str, example: str = "result") -> Path:
    """Check a file a command is about to write, before any work: not a folder, its folder made.

    A missing parent folder is created (as ``replay --out`` makes its folder); a parent
    that cannot be made, or a path that is a folder, is a ConfigError naming the flag and
    the path.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; name a file in it, e.g. {path / example}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{flag} {path}: cannot create its folder {path.parent}: {e.strerror or e}") from None
    return path


def out_folder(path: Path, flag: str) -> Path:
    """Check a folder a command is about to write into, before any work: not a file, and makeable
    (its nearest existing ancestor a folder). The command makes it when it writes."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, not a folder; name a folder")
    f = path
    while not f.exists() and f != f.parent:
        f = f.parent
    if not f.is_dir():
        raise ConfigError(f"{flag} {path}: cannot create the folder: {f} is a file")
    return path


__all__ = ["console", "err_console", "escape", "fail", "out_file", "out_folder", "plain", "warn"]
