"""`workbench live` refuses, before any socket is opened, what cannot be captured: port 0 (in
--ports, a config file or a WORKBENCH_* variable: bound, it is a port the OS picks), reversed or
out-of-range port ranges (the message names --ports or the config key), and a --duration that
is infinite, NaN, zero or negative."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from workbench.config import MAX_DURATION_S, Settings, check_duration, load_settings, parse_ports
from workbench.errors import ConfigError

pytestmark = pytest.mark.timeout(120)


def _live(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    p = subprocess.run([sys.executable, "-m", "workbench.cli", "live", "--source", "udp", "--no-db", "--quiet",
                        *args], capture_output=True, text=True, timeout=100, env=env, cwd=cwd)
    return p.returncode, " ".join((p.stdout + p.stderr).split())


@pytest.mark.parametrize("key", ["transaction_ports", "shred_ports"])
@pytest.mark.parametrize("value", ["[0]", "'0-10'", "[8001, 0]", "'0'"])
def test_port_0_in_the_config_file_is_refused_naming_the_key(tmp_path, key, value):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"{key} = {value}\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg, environ={})
    assert f"key {key}:" in str(e.value) and "port 0" in str(e.value)
    with pytest.raises(ConfigError, match=f"WORKBENCH_{key.upper()}.*port 0"):
        load_settings(environ={f"WORKBENCH_{key.upper()}": "0"})


def test_port_0_may_be_ignored():
    """ignore_ports says which packets are not Solana: a datagram to port 0 may be one of them."""
    assert load_settings(environ={"WORKBENCH_IGNORE_PORTS": "0,53"}).ignore_ports == (0, 53)


@pytest.mark.parametrize("text,words", [("9000-8000", "reversed range"), ("8000-70000", "outside 1-65535"),
                                        ("0", "port 0"), ("x", "not a port")])
def test_port_errors_name_the_flag_or_key(tmp_path, text, words):
    with pytest.raises(ConfigError, match=f"^--ports: .*{words}"):
        parse_ports(text, "--ports")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[workbench]\nshred_ports = '{text}'\n")
    with pytest.raises(ConfigError, match=f"key workbench.shred_ports: .*{words}"):
        load_settings(cfg, environ={})


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 0, -1, MAX_DURATION_S * 2, "soon", True])
def test_check_duration_refuses_what_is_not_a_duration(value):
    with pytest.raises(ConfigError, match="^--duration .*seconds > 0"):
        check_duration(value)


def test_check_duration_accepts_durations():
    assert (check_duration(None), check_duration(0.5), check_duration("60")) == (None, 0.5, 60.0)


def test_the_runner_refuses_an_infinite_duration(tmp_path):
    from workbench.runner import live
    with pytest.raises(ConfigError, match="duration inf"):
        live(None, tmp_path / "out", Settings(), source="udp", ports=(9,), duration=math.inf)


@pytest.mark.parametrize("args,words", [
    (["--ports", "9000-8000", "--duration", "1"], "--ports: '9000-8000' is a reversed range"),
    (["--ports", "0", "--duration", "1"], "--ports: '0' includes port 0"),
    (["--ports", "8001", "--duration", "inf"], "--duration inf:"),
    (["--ports", "8001", "--duration", "nan"], "--duration nan:"),
    (["--ports", "8001", "--duration=-3"], "--duration -3.0:"),
])
def test_cli_live_refuses_bad_ports_and_durations_with_a_message(tmp_path, args, words):
    code, said = _live("--out", str(tmp_path / "out"), *args, cwd=tmp_path)
    assert code == 2 and words in said and "Traceback" not in said, said
    assert not (tmp_path / "out").exists()      # refused before any work


def test_cli_live_refuses_port_0_from_the_config_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("transaction_ports = [0]\n")
    code, said = _live("--config", str(cfg), "--duration", "1", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert code == 2 and f"config file {cfg} key transaction_ports" in said and "port 0" in said, said
