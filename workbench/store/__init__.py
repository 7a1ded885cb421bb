"""The store: engine outputs in ClickHouse (embedded chDB by default, or a server).

Layering: the store receives pyarrow Tables; it imports nothing of engine/, runner or cli.

* ``clickhouse``: DSN parsing, ``connect`` -> ``Store`` (schema check and migrations,
  query and insert helpers), ``conform`` (engine batch -> the table's Arrow shape), errors.
* ``schema``: the tables, their DDL (single node or ``ON CLUSTER``) and the migrations.
* ``writer``: ``StoreWriter``, one thread and a bounded queue; failed inserts are spooled.
* ``spool``: the Arrow IPC spool and its exact (no double rows) flush.
"""

from .clickhouse import Dsn, Store, StoreError, StoreUnavailable, conform, connect, default_dsn, parse_dsn
from .schema import SCHEMA_VERSION, TABLES, Target, render_ddl
from .spool import FlushStats, Spool, default_spool_dir, flush_spool
from .writer import StoreWriter, WriterStats, new_run_id

__all__ = [
    "Dsn", "Store", "StoreError", "StoreUnavailable", "conform", "connect", "default_dsn", "parse_dsn",
    "SCHEMA_VERSION", "TABLES", "Target", "render_ddl",
    "FlushStats", "Spool", "default_spool_dir", "flush_spool",
    "StoreWriter", "WriterStats", "new_run_id",
]
