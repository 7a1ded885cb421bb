"""The specification's ClickHouse server settings, for a server and for the embedded store.

The specification writes one file (deploy/spec/clickhouse-config.xml): ``max_threads`` and
``max_memory_usage`` at the top level, ``<merge_tree>`` limits and a ``<compression>`` case.
A ClickHouse server reads query settings such as ``max_threads`` and ``max_memory_usage``
from a settings profile, not from the top level of its config (there they are ignored
without a word), so the settings are shipped as two files a server merges:

* ``deploy/clickhouse/config.d/workbench.xml``: ``<merge_tree>`` and ``<compression>``
  (server settings), for ``/etc/clickhouse-server/config.d/``;
* ``deploy/clickhouse/users.d/workbench.xml``: ``max_threads`` and ``max_memory_usage`` in
  the ``default`` profile, for ``/etc/clickhouse-server/users.d/``.

The embedded store (chDB) gets the same: chDB reads a config file given as its
``config-file`` option (the ``<merge_tree>`` limits and the zstd level 3 default
compression of new parts take effect), and the two query limits are set on the session;
like a server, chDB ignores them at the top level of a config file.
tests/test_store_server_config.py checks each of these on chDB and that the shipped files
say what the specification says.

The embedded store also runs its background merges at the lowest CPU priority
(``EMBEDDED_SERVER``): they run inside the workbench's own process, beside the engine and the
server's event loop, and on a small host a merge took a core from the loop for long stretches. A
server runs on its own host or cores, so its files stay the specification's.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

# query settings: a server's settings profile, the embedded session's settings
SESSION_LIMITS = {
    "max_threads": 32,                      # threads one query may use
    "max_memory_usage": 128_000_000_000,    # bytes one query may allocate
}
# MergeTree settings of the server (<merge_tree>): the largest merge in bytes when the
# background pool is idle, and when it is nearly full
MERGE_TREE = {
    "max_bytes_to_merge_at_max_space_in_pool": 10_737_418_240,
    "max_bytes_to_merge_at_min_space_in_pool": 1_073_741_824,
}
# default compression of new parts (<compression><case>): columns without a CODEC
COMPRESSION = {"method": "zstd", "level": 3}
# the embedded store's own server settings (not the specification's): merges at nice 19, which takes
# the CPU the process's other threads leave (ClickHouse ignores it without CAP_SYS_NICE)
EMBEDDED_SERVER = {"os_threads_nice_value_merge_mutate": 19}

_HEADER = "<!-- solana-mev-workbench: the specification's ClickHouse settings (deploy/spec/clickhouse-config.xml). -->"


def _lines(d: dict, indent: str) -> list[str]:
    return [f"{indent}<{k}>{v}</{k}>" for k, v in d.items()]


def server_config_xml(extra: dict | None = None) -> str:
    """config.d/workbench.xml: the server settings (merges, default compression); ``extra``: more
    top-level server settings (the embedded store's)."""
    return "\n".join([
        _HEADER,
        "<!-- Goes in /etc/clickhouse-server/config.d/ (the query limits are in users.d/workbench.xml). -->",
        "<clickhouse>", *_lines(extra or {}, "    "),
        "    <merge_tree>", *_lines(MERGE_TREE, "        "), "    </merge_tree>",
        "    <compression>", "        <case>", *_lines(COMPRESSION, "            "), "        </case>",
        "    </compression>",
        "</clickhouse>", ""])


def users_profile_xml() -> str:
    """users.d/workbench.xml: the query limits in the default settings profile."""
    return "\n".join([
        _HEADER,
        "<!-- Goes in /etc/clickhouse-server/users.d/: query settings live in a settings profile. -->",
        "<clickhouse>",
        "    <profiles>", "        <default>", *_lines(SESSION_LIMITS, "            "), "        </default>",
        "    </profiles>",
        "</clickhouse>", ""])


def embedded_config_file() -> str:
    """A chDB config file with the server settings; written once per content, in the temp folder.

    Not in the store's folder: a read-only session must not write there, and the file holds
    nothing of the store."""
    text = server_config_xml(EMBEDDED_SERVER)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"workbench-chdb-config-{os.getuid()}-{digest}.xml")
    if not os.path.isfile(path):
        fd, tmp = tempfile.mkstemp(prefix="workbench-chdb-config-", suffix=".xml.tmp",
                                   dir=os.path.dirname(path))
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)       # whole or absent, even with two processes starting at once
    return path


def embedded_client_options() -> dict:
    """``clickhouse_connect.get_client`` arguments that give a chDB session the same limits."""
    return {"settings": dict(SESSION_LIMITS), "chdb_options": {"config-file": embedded_config_file()}}
