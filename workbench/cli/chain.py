"""``workbench snapshot`` (issue #18): a market snapshot folder from a Solana JSON-RPC endpoint.

A thin face over runner/chain_snapshot.py; ``register(app)`` adds the command to the main app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..chain.rpc_limits import CONCURRENCY, RETRIES, TIMEOUT_S
from ..errors import WorkbenchError
from .output import console, err_console, fail as _fail, out_folder, plain


def _addresses(text: Optional[str]) -> list[str]:
    return [a.strip() for a in text.split(",") if a.strip()] if text else []


def snapshot(
    rpc: str = typer.Option(..., "--rpc", help="JSON-RPC endpoint, e.g. https://api.mainnet-beta.solana.com"),
    out: Path = typer.Option(..., "--out", "-o", help="snapshot folder to write (written whole, or not at all)"),
    pools: Optional[Path] = typer.Option(None, "--pools", help="file of pool addresses, one per line ('#' comments)"),
    mints: Optional[str] = typer.Option(None, "--mints", help="comma-separated mints: every Raydium v4, CPMM and "
                                                              "Whirlpool pool trading two of them (getProgramAccounts)"),
    lookup_tables: Optional[str] = typer.Option(None, "--lookup-tables", help="comma-separated address lookup "
                                                                             "tables to include"),
    token_accounts: Optional[str] = typer.Option(None, "--token-accounts", help="comma-separated token accounts to "
                                                                               "include (swap direction of v4 swaps)"),
    concurrency: int = typer.Option(CONCURRENCY, help="requests in flight at once"),
    timeout: float = typer.Option(TIMEOUT_S, help="seconds per request before it is retried"),
    retries: int = typer.Option(RETRIES, help="retries of a failed request (backoff doubles; 429 Retry-After "
                                              "honoured)"),
    replace: bool = typer.Option(False, "--replace", help="overwrite an existing --out folder (swapped in once the "
                                                          "new one has loaded)"),
):
    """Fetch pools, their vaults and mints with getMultipleAccounts and write the engine's snapshot folder."""
    from ..runner.chain_snapshot import read_pool_file, snapshot_from_rpc
    try:
        out_folder(out, "--out")
        addresses = read_pool_file(pools) if pools else []
        with Progress(TextColumn("[bold]accounts"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err_console, transient=True) as prog:
            task = prog.add_task("accounts", total=0)

            def progress(done, more):
                if more:
                    prog.update(task, total=prog.tasks[0].total + more)
                prog.advance(task, done)

            res = snapshot_from_rpc(rpc, out, addresses, _addresses(mints),
                                    _addresses(lookup_tables),
                                    _addresses(token_accounts),
                                    concurrency=concurrency, timeout_s=timeout, retries=retries, replace=replace,
                                    progress=progress)
    except WorkbenchError as e:
        _fail(e)
    t = Table(show_header=False, title=plain(f"snapshot {res.out}"), title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    t.add_row("pools", ", ".join(f"{n} {k}" for k, n in sorted(res.pools_by_program.items())))
    t.add_row("tokens", f"{res.tokens:,}")
    t.add_row("context slot", f"{res.slot_max:,}" + (f" (first batch {res.slot_min:,})"
                                                     if res.slot_min != res.slot_max else ""))
    t.add_row("accounts fetched", f"{res.accounts:,}")
    t.add_row("requests (retries, 429s)", f"{res.requests:,} ({res.retries:,}, {res.rate_limited:,})")
    t.add_row("seconds", f"{res.seconds:.2f}")
    console.print(t)


def blocks(
    rpc: str = typer.Option(..., "--rpc", help="JSON-RPC endpoint, e.g. https://api.mainnet-beta.solana.com"),
    first: int = typer.Option(..., "--from", help="first slot"),
    last: int = typer.Option(..., "--to", help="last slot (inclusive)"),
    out: Path = typer.Option(..., "--out", "-o", help="blocks file to write (Arrow IPC; written whole, or not at all)"),
    market: Optional[Path] = typer.Option(None, "--market", help="snapshot folder: keep only its vaults' token "
                                                                 "balances (default: all)"),
    commitment: str = typer.Option("confirmed", help="confirmed or finalized"),
    concurrency: int = typer.Option(CONCURRENCY, help="requests in flight at once"),
    timeout: float = typer.Option(TIMEOUT_S, help="seconds per request before it is retried"),
    retries: int = typer.Option(RETRIES, help="retries of a failed request (backoff doubles; 429 Retry-After "
                                              "honoured)"),
):
    """Fetch every block of a slot range with getBlock into a file `workbench replay` runs in landed order."""
    from ..runner.chain_blocks import backfill_blocks
    try:
        with Progress(TextColumn("[bold]slots"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err_console, transient=True) as prog:
            task = prog.add_task("slots", total=max(0, last - first + 1))
            res = backfill_blocks(rpc, first, last, out, market=market, commitment=commitment,
                                  concurrency=concurrency, timeout_s=timeout, retries=retries,
                                  progress=lambda n: prog.advance(task, n))
    except WorkbenchError as e:
        _fail(e)
    t = Table(show_header=False, title=plain(f"blocks {res.out}"), title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    t.add_row("slots", f"{res.slots:,} ({res.blocks:,} blocks, {len(res.skipped):,} skipped)")
    t.add_row("transactions", f"{res.transactions:,} ({res.failed:,} failed)")
    t.add_row("requests (retries, 429s)", f"{res.requests:,} ({res.retries:,}, {res.rate_limited:,})")
    t.add_row("seconds", f"{res.seconds:.2f}")
    console.print(t)


def register(app: typer.Typer) -> None:
    app.command(name="snapshot")(snapshot)
    app.command(name="blocks")(blocks)
