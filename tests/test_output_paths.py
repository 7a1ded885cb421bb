"""Issue 15 item 13: every output path a command writes is checked before any work starts, with a
message naming the flag and the path; missing parent folders are made (as replay's --out always
did). `db query -o` is covered in test_cli_db.py."""

from __future__ import annotations

import importlib

import pytest
from typer.testing import CliRunner

from conftest import CAPTURES
from workbench.cli.app import app
from workbench.config import Settings
from workbench.errors import ConfigError
from workbench.runner import engine_run

live_mod = importlib.import_module("workbench.runner.live")     # the package re-exports live() by that name


class _Opened(Exception):
    """Raised by the stand-in source: the run got as far as opening its socket."""


@pytest.fixture
def no_socket(monkeypatch):
    calls = []

    def fake_open(*a, **k):
        calls.append(a)
        raise _Opened()
    monkeypatch.setattr(live_mod, "open_live_source", fake_open)
    return calls


def test_output_folder_and_file_checks(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    with pytest.raises(ConfigError, match=rf"--out {f}: is a file"):
        engine_run.out_folder(f)
    with pytest.raises(ConfigError, match=rf"--out {f / 'sub'}: cannot create the folder .*{f} is a file"):
        engine_run.out_folder(f / "sub")
    assert engine_run.out_folder(tmp_path / "new" / "deep").is_dir()
    with pytest.raises(ConfigError, match=rf"--record {tmp_path}: is a folder"):
        engine_run.out_file(tmp_path, "--record")
    with pytest.raises(ConfigError, match=rf"--record {f / 'r.pcapng'}: cannot create the folder {f}: {f} is a file"):
        engine_run.out_file(f / "r.pcapng", "--record")
    assert engine_run.out_file(tmp_path / "m" / "r.pcapng", "--record").parent.is_dir()


def test_live_checks_out_and_record_before_the_socket_opens(tmp_path, no_socket):
    s = Settings(udp_bind_addr="127.0.0.1")
    f = tmp_path / "a_file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="--record .*is a folder"):
        live_mod.live(None, tmp_path / "out", s, source="udp", ports=[9], record=tmp_path)
    with pytest.raises(ConfigError, match="--record .*cannot create the folder"):
        live_mod.live(None, tmp_path / "out", s, source="udp", ports=[9], record=f / "r.pcapng")
    with pytest.raises(ConfigError, match="--out .*is a file"):
        live_mod.live(None, f, s, source="udp", ports=[9])
    assert no_socket == []
    # folders that do not exist yet are fine: made once the source is open, so a refused
    # source leaves nothing behind
    with pytest.raises(_Opened):
        live_mod.live(None, tmp_path / "out", s, source="udp", ports=[9], record=tmp_path / "new" / "r.pcapng")
    assert len(no_socket) == 1 and not (tmp_path / "new").exists() and not (tmp_path / "out").exists()


def test_cli_replay_and_live_output_paths_are_messages(tmp_path, no_socket):
    f = tmp_path / "a_file"
    f.write_text("x")
    r = CliRunner().invoke(app, ["replay", str(CAPTURES / "small.pcap"), "-o", str(f), "--no-db", "-q"])
    assert r.exit_code == 2 and f"--out {f}: is a file" in r.output and "Traceback" not in r.output, r.output
    assert f.read_text() == "x"
    r = CliRunner().invoke(app, ["live", "--source", "udp", "--ports", "9", "-o", str(tmp_path / "o"),
                                 "--record", str(f / "r.pcapng"), "--no-db", "-q"])
    assert r.exit_code == 2 and "--record" in r.output and "cannot create the folder" in r.output, r.output
    assert no_socket == []


def test_cli_generate_and_train_output_paths_before_any_work(tmp_path, monkeypatch):
    import workbench.model.train as train_mod
    import workbench.synth.generate as gen_mod
    started = []
    monkeypatch.setattr(gen_mod, "generate_capture", lambda *a, **k: started.append(a))
    monkeypatch.setattr(train_mod, "train_runs", lambda *a, **k: started.append(a))
    f = tmp_path / "a_file"
    f.write_text("x")
    r = CliRunner().invoke(app, ["generate", "-o", str(tmp_path), "--seconds", "0.1"])
    assert r.exit_code == 2 and f"--out {tmp_path}: is a folder" in r.output, r.output
    r = CliRunner().invoke(app, ["generate", "-o", str(f / "x.pcap"), "--seconds", "0.1"])
    assert r.exit_code == 2 and "cannot create its folder" in r.output, r.output
    r = CliRunner().invoke(app, ["train", str(tmp_path), "-o", str(f)])
    assert r.exit_code == 2 and f"--out {f}: is a file" in r.output, r.output
    r = CliRunner().invoke(app, ["train", str(tmp_path), "-o", str(f / "m")])
    assert r.exit_code == 2 and f"{f} is a file" in r.output, r.output
    assert started == [] and f.read_text() == "x"
    # a capture in a folder that does not exist yet: the folder is made
    r = CliRunner().invoke(app, ["generate", "-o", str(tmp_path / "new" / "g.pcap"), "--seconds", "0.1"])
    assert (tmp_path / "new").is_dir() and len(started) == 1
