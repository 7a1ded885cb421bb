"""The specification's ClickHouse settings (issue 17): the files shipped for a server say what the
specification says, and the embedded chDB store runs with the same limits, each one checked
where chDB shows it (system tables, the query pipeline, the compression of a written part)."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

from conftest import REPO
from workbench.store import connect
from workbench.store import server_config as C

SPEC_XML = REPO / "deploy" / "spec" / "clickhouse-config.xml"
DEPLOY = REPO / "deploy" / "clickhouse"
ZSTD_METHOD, LZ4_METHOD = 0x90, 0x82     # method byte of a ClickHouse compressed block, after its 16-byte checksum


def spec_tree() -> ET.Element:
    """The specification's file; it ends without ``</clickhouse>``, which is added to read it."""
    text = SPEC_XML.read_text()
    if "</clickhouse>" not in text:
        text += "\n</clickhouse>\n"
    return ET.fromstring(text)


def test_the_shipped_files_are_the_rendered_settings():
    assert (DEPLOY / "config.d" / "workbench.xml").read_text() == C.server_config_xml()
    assert (DEPLOY / "users.d" / "workbench.xml").read_text() == C.users_profile_xml()


def test_the_shipped_files_say_what_the_specification_says():
    spec = spec_tree()
    server = ET.parse(DEPLOY / "config.d" / "workbench.xml").getroot()
    users = ET.parse(DEPLOY / "users.d" / "workbench.xml").getroot()
    assert {e.tag: int(e.text) for e in spec.find("merge_tree")} == \
        {e.tag: int(e.text) for e in server.find("merge_tree")} == C.MERGE_TREE
    assert {e.tag: e.text for e in spec.find("compression/case")} == \
        {e.tag: e.text for e in server.find("compression/case")} == {k: str(v) for k, v in C.COMPRESSION.items()}
    limits = {k: int(spec.find(k).text) for k in ("max_threads", "max_memory_usage")}
    assert limits == {e.tag: int(e.text) for e in users.find("profiles/default")} == C.SESSION_LIMITS
    # nothing of the specification is left out
    assert {e.tag for e in spec} == {"max_threads", "max_memory_usage", "merge_tree", "compression"}


def test_the_embedded_session_runs_with_the_specification_limits(store, dsn):
    rows = dict(store.query_rows("SELECT name, value FROM system.settings WHERE name IN "
                                 "('max_threads', 'max_memory_usage') AND changed"))
    assert {k: int(v) for k, v in rows.items()} == C.SESSION_LIMITS
    pipeline = "\n".join(r[0] for r in store.query_rows("EXPLAIN PIPELINE SELECT sum(number) FROM numbers_mt(1000000000)"))
    width = max(int(w) for w in re.findall(r"AggregatingTransform × (\d+)", pipeline))
    # the session's max_threads, not the core count, sets how wide a query runs (ClickHouse may
    # open fewer streams than max_threads for a source; never more)
    assert width <= C.SESSION_LIMITS["max_threads"]
    if (os.cpu_count() or 1) < 16:
        assert width > (os.cpu_count() or 1), pipeline
    merge = dict(store.query_rows("SELECT name, value FROM system.merge_tree_settings WHERE changed"))
    assert {k: int(merge[k]) for k in C.MERGE_TREE} == C.MERGE_TREE
    own = dict(store.query_rows("SELECT name, value FROM system.server_settings WHERE name IN "
                                "('os_threads_nice_value_merge_mutate')"))
    assert {k: int(v) for k, v in own.items()} == C.EMBEDDED_SERVER     # merges at nice 19, embedded only
    # new parts of a column without a CODEC are compressed with zstd, not ClickHouse's default LZ4
    store.command("CREATE TABLE plain_codec (x UInt64, s String) ENGINE = MergeTree ORDER BY x")
    store.command("INSERT INTO plain_codec SELECT number, toString(number % 97) FROM numbers(10000)")
    (path,), = store.query_rows("SELECT path FROM system.parts WHERE table = 'plain_codec' AND active")
    files = sorted(glob.glob(os.path.join(path, "*.bin")))
    assert files
    for f in files:
        with open(f, "rb") as fh:
            assert fh.read(17)[16] == ZSTD_METHOD, f
    store.close()
    with connect(dsn, ensure_schema=False, read_only=True) as ro:      # a read-only session keeps the limits
        rows = dict(ro.query_rows("SELECT name, value FROM system.settings WHERE name IN "
                                  "('max_threads', 'max_memory_usage', 'readonly')"))
        assert rows == {"max_threads": "32", "max_memory_usage": "128000000000", "readonly": "1"}


_PROBE = r"""
import sys, clickhouse_connect
c = clickhouse_connect.get_client(interface="chdb", path=sys.argv[1], chdb_options={"config-file": sys.argv[2]})
print(c.query("SELECT toUInt8(changed) FROM system.settings WHERE name = 'max_threads'").result_rows[0][0])
print(c.query("SELECT toUInt8(changed) FROM system.merge_tree_settings "
              "WHERE name = 'max_bytes_to_merge_at_max_space_in_pool'").result_rows[0][0])
"""


def test_chdb_ignores_query_limits_at_the_top_of_a_config_file(tmp_path):
    """Why the limits go on the session (and in a server's users.d profile): the specification's
    file as written sets the merge limits but not max_threads, in chDB as in a server."""
    spec = tmp_path / "spec.xml"
    spec.write_bytes(ET.tostring(spec_tree()))
    out = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path / "probe"), str(spec)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1"]          # max_threads unchanged, merge_tree setting read
