"""Settings: every field's type and range is checked wherever the value came from (TOML key,
WORKBENCH_* variable, flag, or a Settings built in code), and the error names the field, the
value, the source and what is allowed; never a traceback from the CLI."""

from __future__ import annotations

import dataclasses

import pytest
from typer.testing import CliRunner

from workbench.capture import ring, udp
from workbench.capture.afpacket import FANOUT_MODES
from workbench.cli.app import app
from workbench.config import (INT_RANGES, MAX_SHRED_SLOTS, MAX_SHREDS_PER_SLOT, MIN_SLOT_BYTES, Settings,
                              load_settings, parse_ports)
from workbench.errors import ConfigError
from workbench.wire import shred

runner = CliRunner()

# (field, bad value as TOML text, bad value as a WORKBENCH_* string, words the message must hold)
BAD = [
    ("batch_frames", "inf", "inf", "[1, 4194303]"),
    ("batch_frames", "{ a = 1 }", "[1]", "[1, 4194303]"),
    ("batch_frames", "2.5", "2.5", "[1, 4194303]"),
    ("batch_frames", "true", "", "[1, 4194303]"),
    ("shred_slots", "0", "0", "[1, 127]"),
    ("shred_slots", "-1", "-1", "[1, 127]"),
    ("shred_slots", "1000", "1000", "[1, 127]"),
    ("shreds_per_slot", "0", "0", "[1, 32768]"),
    ("key_capacity", str(2**40), str(2**40), "power of two"),
    ("key_capacity", "100", "100", "power of two"),
    ("split_slot_bytes", "8", "8", "[128, "),
    ("split_ring_slots", "3", "3", "power of two"),
    ("udp_slot_bytes", "100", "100", "multiple of 64"),
    ("live_slice_ms", "nan", "nan", "[1, 60000]"),
    ("tip_lamports", "-1", "-1", "[0, "),
    ("progress", "{ x = 1 }", "maybe", "true or false"),
    ("data_dir", "{ x = 1 }", "", "string"),
    ("market", "[1, 2]", "a\x00b", "without NUL"),
    ("fanout_mode", "'random'", "random", "hash, lb, cpu"),
    ("udp_bind_addr", "'localhost'", "999.1.1.1", "IPv4"),
    ("transaction_ports", "[8001, { a = 1 }]", "80x", "port"),
    ("shred_ports", "3.5", "70000", "port"),
]


@pytest.mark.parametrize("field,toml,env,allowed", BAD)
def test_bad_toml_value_names_field_value_file_key_and_range(tmp_path, field, toml, env, allowed):
    conf = tmp_path / "c.toml"
    conf.write_text(f"[workbench]\n{field} = {toml}\n")
    with pytest.raises(ConfigError) as e:
        load_settings(conf, environ={})
    msg = str(e.value)
    assert f"config file {conf} key workbench.{field}" in msg and field in msg and allowed in msg, msg


@pytest.mark.parametrize("field,toml,env,allowed", BAD)
def test_bad_environment_value_names_the_variable(field, toml, env, allowed):
    var = f"WORKBENCH_{field.upper()}"
    with pytest.raises(ConfigError) as e:
        load_settings(environ={var: env})
    msg = str(e.value)
    assert f"environment variable {var}" in msg and field in msg and allowed in msg, msg


@pytest.mark.parametrize("field,toml,env,allowed", [b for b in BAD if b[2]])
def test_bad_flag_value_names_the_flag(field, toml, env, allowed):
    with pytest.raises(ConfigError) as e:
        load_settings(environ={}, **{field: env})
    assert f"flag --{field.replace('_', '-')}" in str(e.value) and allowed in str(e.value)


@pytest.mark.parametrize("field,toml,env,allowed", BAD)
def test_settings_built_in_code_are_checked_by_validate(field, toml, env, allowed):
    import tomllib
    value = tomllib.loads(f"v = {toml}")["v"]
    with pytest.raises(ConfigError, match=field):
        Settings(**{field: value}).validate()


def test_every_field_is_type_and_range_checked():
    """No field escapes the check: each refuses a TOML table (the kind of value no field takes)."""
    for f in dataclasses.fields(Settings):
        with pytest.raises(ConfigError, match=f.name):
            load_settings(environ={}, **{f.name: {"a": 1}})


def test_defaults_are_valid_and_unchanged():
    s = load_settings(environ={})
    assert s == Settings() and s.validate() == Settings()
    assert (s.key_capacity, s.shred_slots, s.shreds_per_slot, s.split_slot_bytes) == (1 << 16, 4, 8192, 2048)


def test_good_values_of_every_source_are_converted_and_precedence_holds(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text("batch_frames = 1e3\nkey_capacity = 1048576\nshred_slots = 127\nprogress = false\n"
                    "transaction_ports = [8001, '8003-8004']\n")
    s = load_settings(conf, environ={"WORKBENCH_SHRED_SLOTS": " 0x10 ", "WORKBENCH_PROGRESS": "yes"},
                      shreds_per_slot=32768)
    assert (s.batch_frames, s.key_capacity, s.shred_slots, s.progress) == (1000, 1 << 20, 16, True)
    assert s.shreds_per_slot == 32768 and s.transaction_ports == (8001, 8003, 8004)


def test_numpy_integers_from_code_are_plain_ints():
    import numpy as np
    s = Settings(batch_frames=np.int64(7), key_capacity=np.uint32(128)).validate()
    assert (s.batch_frames, s.key_capacity) == (7, 128) and type(s.batch_frames) is int


def test_bounds_match_what_the_decoders_and_rings_accept():
    """The config's limits are those of wire/shred, engine/deshred and the capture rings."""
    assert MAX_SHREDS_PER_SLOT == shred.MAX_SHREDS_PER_SLOT and MAX_SHRED_SLOTS == 127
    assert MIN_SLOT_BYTES >= ring.SLOT_HDR_SZ + 64 and MIN_SLOT_BYTES >= udp.HDR_SZ + 64 and MIN_SLOT_BYTES % 64 == 0
    assert set(FANOUT_MODES) == {"hash", "lb", "cpu"}
    for field, (lo, hi, _) in INT_RANGES.items():
        assert lo <= getattr(Settings(), field) <= hi, field
    from workbench.engine.deshred import new_deshred_state
    new_deshred_state(1, 1)    # the smallest allowed values are accepted where they are used
    ring.check_geometry(2, MIN_SLOT_BYTES)


def test_rings_too_large_to_allocate_are_refused():
    with pytest.raises(ConfigError, match="split_ring_slots \\* split_slot_bytes"):
        load_settings(environ={"WORKBENCH_SPLIT_RING_SLOTS": str(1 << 24)}, split_slot_bytes=1 << 16)
    with pytest.raises(ConfigError, match="WORKBENCH_AFPACKET_BLOCK_COUNT"):
        load_settings(environ={"WORKBENCH_AFPACKET_BLOCK_COUNT": "60000"}, afpacket_block_size=1 << 20)


def test_cross_field_errors_name_both_sources(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(environ={"WORKBENCH_TRANSACTION_PORTS": "8001"}, shred_ports="8001")
    assert "WORKBENCH_TRANSACTION_PORTS" in str(e.value) and "flag --shred-ports" in str(e.value)
    with pytest.raises(ConfigError, match="live_stage_rows.*live_batch_frames"):
        load_settings(environ={"WORKBENCH_LIVE_BATCH_FRAMES": "60000"})


@pytest.mark.parametrize("text,msg", [("9000-8000", "reversed range"), ("8000-70000", "outside 1-65535"), ("0,8001", "port 0"),
                                      ("-5", "not a port"), ("8001,x", "not a port")])
def test_port_lists(text, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_ports(text)
    assert parse_ports("8000-8002, 9000") == (8000, 8001, 8002, 9000) and parse_ports("") == ()


def test_unreadable_config_files(tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"# caf\xe9\nbatch_frames = 7\n")
    with pytest.raises(ConfigError, match="not UTF-8 at byte 5"):
        load_settings(bad, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="WORKBENCH_CONFIG.*|is not a file"):
        load_settings(environ={"WORKBENCH_CONFIG": str(tmp_path)})
    (tmp_path / "syntax.toml").write_text("batch_frames = = 3\n")
    with pytest.raises(ConfigError, match="syntax.toml"):
        load_settings(tmp_path / "syntax.toml", environ={})
    (tmp_path / "deep.toml").write_text("batch_frames = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="deep.toml"):
        load_settings(tmp_path / "deep.toml", environ={})
    (tmp_path / "wb.toml").write_text("workbench = 3\n")
    with pytest.raises(ConfigError, match="key workbench"):
        load_settings(tmp_path / "wb.toml", environ={})
    (tmp_path / "unknown.toml").write_text("[workbench]\nbatch_frame = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'batch_frame'"):
        load_settings(tmp_path / "unknown.toml", environ={})


@pytest.mark.parametrize("env", [{"WORKBENCH_BATCH_FRAMES": "inf"}, {"WORKBENCH_SHRED_SLOTS": "1000"},
                                 {"WORKBENCH_CONFIG": "/nonexistent/workbench.toml"}])
def test_db_flush_spool_and_db_commands_print_config_errors(tmp_path, monkeypatch, env):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for args in (["db", "flush-spool"], ["db", "runs"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output, r.output
        assert isinstance(r.exception, SystemExit)
        assert next(iter(env)).removeprefix("WORKBENCH_").lower() in r.output.lower() or "workbench.toml" in r.output


def test_replay_prints_config_errors_with_source(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text("[workbench]\nbatch_frames = inf\n")
    r = runner.invoke(app, ["replay", "nothing.pcap", "--config", str(conf), "--no-db", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "key workbench.batch_frames" in r.output and "Traceback" not in r.output
