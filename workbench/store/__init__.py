"""The store: engine outputs in ClickHouse (embedded chDB by default, or a server).

Layering: the store receives pyarrow Tables; it imports nothing of engine/, runner or cli.

* ``dsn``: the DSN forms, checked and split (``parse_dsn`` -> ``Dsn``).
* ``clickhouse``: ``connect`` -> ``Store`` (schema check and migrations, query and insert
  helpers), driver errors turned into ``StoreError`` / ``StoreUnavailable`` (errors.py).
* ``columns``: ``conform`` (engine batch -> the table's Arrow shape) and which engine
  column feeds which column of ``mev_opportunities`` and ``swaps``.
* ``schema``: the tables, their DDL (single node or ``ON CLUSTER``) and the migrations.
* ``migrate``: migrations the store's version lacks, then a repair of what it lacks.
* ``server_config``: the specification's server settings: files for a server, the same
  limits on the embedded session.
* ``writer``: ``StoreWriter``, one thread and a bounded queue; failed inserts are spooled.
* ``spool``: the Arrow IPC spool and its exact (no double rows) flush.
"""

from ..errors import StoreError, StoreUnavailable
from .clickhouse import Store, connect
from .columns import conform, mev_opportunities_table, swaps_table
from .dsn import Dsn, parse_dsn
from .schema import SCHEMA_VERSION, TABLES, Target, render_ddl
from .spool import FlushStats, Spool, default_spool_dir, flush_spool
from .writer import StoreWriter, WriterStats, new_run_id

__all__ = [
    "StoreError", "StoreUnavailable", "Store", "connect", "conform", "mev_opportunities_table", "swaps_table",
    "Dsn", "parse_dsn",
    "SCHEMA_VERSION", "TABLES", "Target", "render_ddl",
    "FlushStats", "Spool", "default_spool_dir", "flush_spool",
    "StoreWriter", "WriterStats", "new_run_id",
]
