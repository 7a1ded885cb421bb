"""The `workbench` command as a user runs it: summaries, outputs and clear errors."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import CAPTURES
from workbench.cli import app

runner = CliRunner()


def test_replay_prints_summary_and_writes_outputs(tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["replay", str(CAPTURES / "small.pcap"), "--out", str(out), "--quiet", "--no-db"])
    assert r.exit_code == 0, r.output
    for word in ("packets", "transactions decoded", "packets by status", "processing ns/packet p99",
                 "transactions by program"):
        assert word in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["packets"] == 998 and summary["by_status"]["transaction"] == summary["transactions"]
    # the engine thread's CPU time in its calls: some, and within their wall time (a clock's rounding apart)
    assert 0 < summary["engine_cpu_s"] <= summary["engine_s"] + 1e-3
    cols = pq.read_schema(out / "tx_features.parquet").names
    for c in ("packet_index", "ts_ns", "signature", "version", "num_signatures", "num_account_keys",
              "num_instructions", "num_lookup_tables", "compute_unit_limit", "compute_unit_price",
              "jito_tip_lamports", "programs"):
        assert c in cols


def test_truncated_capture_is_processed_up_to_the_damage(tmp_path):
    cap = tmp_path / "cut.pcap"
    data = (CAPTURES / "small.pcap").read_bytes()
    cap.write_bytes(data[: len(data) // 2 + 7])
    r = runner.invoke(app, ["replay", str(cap), "--out", str(tmp_path / "o"), "--quiet", "--no-db"])
    assert r.exit_code == 3
    assert "capture damaged" in r.output and str(cap) in r.output and "+0x" in r.output
    summary = json.loads((tmp_path / "o/summary.json").read_text())
    assert 400 < summary["packets"] < 998 and summary["capture_error"]
    assert pq.read_metadata(tmp_path / "o/tx_features.parquet").num_rows == summary["transactions"]


@pytest.mark.parametrize("content,msg", [(None, "no such file"), (b"just text\n", "not a pcap or pcapng"),
                                         (b"", "not a pcap or pcapng")])
def test_bad_captures_get_clear_errors(tmp_path, content, msg):
    cap = tmp_path / "x.pcap"
    if content is not None:
        cap.write_bytes(content)
    r = runner.invoke(app, ["replay", str(cap), "--out", str(tmp_path / "o"), "--quiet", "--no-db"])
    assert r.exit_code == 2 and msg in r.output and str(cap) in r.output
    assert "Traceback" not in r.output


def test_bad_settings_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_BATCH_FRAMES", "zero")
    r = runner.invoke(app, ["replay", str(CAPTURES / "small.pcap"), "--out", str(tmp_path), "--no-db"])
    assert r.exit_code == 2 and "batch_frames" in r.output
    monkeypatch.delenv("WORKBENCH_BATCH_FRAMES")
    conf = tmp_path / "c.toml"
    conf.write_text("[workbench]\ntransaction_ports = '8003-8001x'\n")
    r = runner.invoke(app, ["replay", str(CAPTURES / "small.pcap"), "--config", str(conf), "--no-db"])
    assert r.exit_code == 2 and "8003-8001x" in r.output


def test_generate_then_replay_round_trip(tmp_path, monkeypatch):
    from workbench.cli import output
    monkeypatch.setattr(output.console, "width", 200)
    cap = tmp_path / "new" / "g.pcapng"                  # issue 17 item 1: a missing folder is made
    r = runner.invoke(app, ["generate", "--out", str(cap), "--seconds", "0.5", "--tps", "2000", "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert cap.exists() and cap.with_name(cap.name + ".truth.parquet").exists()
    # issue 17 item 1: a summary, not the result's repr: files with sizes, counts, seed, time
    assert "GenerateResult(" not in r.output
    truth_rows = pq.read_metadata(cap.with_name(cap.name + ".truth.parquet")).num_rows
    for want in (rf"generated {re.escape(str(cap))}", rf"packets +│ +{truth_rows:,} │", r"seed +│ +3 │",
                 r"wall time +│ +[\d.]+ s", "files written", rf"{re.escape(str(cap))} +│ +[\d.]+ [kM]B",
                 r"\.truth\.parquet +│ +[\d.]+ [kM]?B", r"transactions \(the replay should decode\) +│ +[\d,]+ │"):
        assert re.search(want, r.output), (want, r.output)


def test_generate_market_summary_counts_planted_opportunities(tmp_path, monkeypatch):
    from workbench.cli import output
    monkeypatch.setattr(output.console, "width", 200)
    cap = tmp_path / "m.pcap"
    r = runner.invoke(app, ["generate", "--out", str(cap), "--seconds", "0.5", "--tps", "500", "--seed", "4",
                            "--market", "--opportunities", "8"])
    assert r.exit_code == 0, r.output
    truth = pq.read_table(cap.with_name(cap.name + ".opportunities.truth.parquet")).to_pylist()
    planted = sum(t["primary"] for t in truth)
    assert planted > 0
    assert re.search(rf"opportunities planted +│ +{planted} of \d+ scheduled", r.output), r.output
    for kind in ("sandwich", "arbitrage", "liquidation"):
        n = sum(t["type"] == kind for t in truth)
        assert re.search(rf"{kind} \(truth rows\) +│ +{n} │", r.output), (kind, r.output)
    assert re.search(r"m\.pcap\.market/ +│ +[\d.]+ [kM]?B", r.output), r.output
    r = runner.invoke(app, ["replay", str(cap), "--out", str(tmp_path / "o"), "--quiet", "--no-db"])
    assert r.exit_code == 0, r.output
    truth = pq.read_table(cap.with_name(cap.name + ".truth.parquet")).column("expected_status").to_pylist()
    summary = json.loads((tmp_path / "o/summary.json").read_text())
    assert summary["by_status"]["transaction"] == truth.count("transaction")


def test_batch_size_does_not_change_outputs(tmp_path):
    for bf in ("7", "4096"):
        r = runner.invoke(app, ["replay", str(CAPTURES / "demo.pcapng"), "--out", str(tmp_path / bf), "--quiet",
                                "--no-db", "--batch-frames", bf])
        assert r.exit_code == 0, r.output
    for f in ("tx_features.parquet", "packet_status.parquet"):
        assert (tmp_path / "7" / f).read_bytes() == (tmp_path / "4096" / f).read_bytes()


def test_inspect_names_file_frame_and_offset():
    import pyarrow.parquet as pq
    truth = pq.read_table(CAPTURES / "demo.pcapng.truth.parquet").to_pylist()
    bad = next(t for t in truth if t["expected_status"] == "truncated")
    good = next(t for t in truth if t["expected_status"] == "transaction")
    r = runner.invoke(app, ["inspect", str(CAPTURES / "demo.pcapng"), str(bad["packet_index"])])
    assert r.exit_code == 0, r.output
    assert f"frame {bad['packet_index']} +0x" in r.output and "truncated" in r.output
    r = runner.invoke(app, ["inspect", str(CAPTURES / "demo.pcapng"), str(good["packet_index"]), "--offsets"])
    assert r.exit_code == 0 and "transaction" in r.output and "WireError" not in r.output
    assert "instruction 0" in r.output and "payload_offset" in r.output      # the decoder's view, kept
    r = runner.invoke(app, ["inspect", str(CAPTURES / "demo.pcapng"), "999999"])
    assert r.exit_code == 2 and "the capture has 3996 frames" in r.output


def test_inspect_shows_what_the_explorer_shows(monkeypatch, fixtures, tmp_path):
    """Issue 17 item 7: signature, account keys with roles, programs by name, decoded
    instructions, swaps with exact amounts, the Jito tip; a shred's header."""
    from workbench.cli import output
    from workbench.dissect import describe_transaction
    from workbench.frame_report import inspect_frame
    monkeypatch.setattr(output.console, "width", 200)
    opp = next(o for o in pq.read_table(CAPTURES / "market.pcapng.opportunities.truth.parquet").to_pylist()
               if o["packet_index"] >= 0)
    cap = CAPTURES / "market.pcapng"
    r = runner.invoke(app, ["inspect", str(cap), str(opp["packet_index"])])
    assert r.exit_code == 0, r.output
    d = describe_transaction(inspect_frame(cap, opp["packet_index"]).payload)
    swap = next(e for e in d["events"] if e["kind"] == "swap")
    for want in (opp["trigger_signature"], "account keys", "signer, writable", "instructions", "programs",
                 ", ".join(d["programs"]), swap["what"], swap["pool"], f"{swap['amount_in']:,}",
                 f"{swap['amount_out']:,}", d["account_keys"][0]["address"], "recent blockhash", " UTC"):
        assert want in r.output, (want, r.output)
    assert re.search(r"swap 1 \(instruction \d+\)", r.output) and "payload_offset" not in r.output
    # --market: lookup-table accounts resolved, pools and vaults named with token symbols
    r = runner.invoke(app, ["inspect", str(cap), str(opp["packet_index"]), "--market", str(cap) + ".market"])
    assert r.exit_code == 0, r.output
    assert any(p in r.output for p in opp["pools"]) and "via lookup" in r.output, r.output
    assert re.search(r"pool (raydium_amm_v4|raydium_cpmm|orca_whirlpool) [A-Z]+/[A-Z]+", r.output), r.output
    r = runner.invoke(app, ["inspect", str(cap), "1", "--market", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "tokens.parquet: missing" in r.output and "Traceback" not in r.output
    tip = next(t for t in pq.read_table(cap.with_name(cap.name + ".truth.parquet")).to_pylist()
               if t["jito_tip_lamports"] > 0)
    r = runner.invoke(app, ["inspect", str(cap), str(tip["packet_index"])])
    assert re.search(rf"Jito tip +│ {tip['jito_tip_lamports']:,} lamports", r.output), r.output
    # a shred: its header, as the engine's shred decoder reads it
    shreds = fixtures / "firedancer/src/disco/shred/fixtures/demo-shreds.pcap"
    r = runner.invoke(app, ["inspect", str(shreds), "0", "--config", str(_shred_config(shreds, tmp_path))])
    assert r.exit_code == 0, r.output
    assert "shred" in r.output and re.search(r"slot +│ [\d,]+", r.output), r.output


def _shred_config(shreds, tmp_path):
    """A settings file naming the shred capture's destination port as a shred port."""
    from workbench.capture import open_capture
    from workbench.wire.net import udp_payload
    b = next(iter(open_capture(shreds)))
    _st, _o, _s, _sp, dport = udp_payload(b.buf, int(b.off[0]), int(b.caplen[0]), int(b.linktype[0]))
    f = tmp_path / "shreds.toml"
    f.write_text(f"[workbench]\nshred_ports = '{int(dport)}'\n")
    return f


SMALL = str(CAPTURES / "small.pcap")
SEND = ["send", SMALL, "-i", "lo"]


@pytest.mark.parametrize("args,flag,limit", [
    (["replay", SMALL, "--speed", "inf"], "--speed", "1e+06"),
    (["replay", SMALL, "--speed", "nan"], "--speed", "1e+06"),
    (["replay", SMALL, "--speed", "0"], "--speed", "unset"),        # 0 is refused, not taken for unpaced
    (["replay", SMALL, "--speed", "-1"], "--speed", "1e-06"),
    (["replay", SMALL, "--speed", "1e7"], "--speed", "1e+06"),
    (SEND + ["--speed", "inf"], "--speed", "--topspeed"),
    (SEND + ["--speed", "0"], "--speed", "1e-06"),
    (SEND + ["--pps", "inf"], "--pps", "2e+08"),
    (SEND + ["--pps", "0"], "--pps", "0.001"),
    (SEND + ["--pps", "1e9"], "--pps", "2e+08"),
    (["generate", "--tps", "1e9"], "--tps", "20,000,000"),
    (["generate", "--tps", "inf"], "--tps", "finite"),
    (["generate", "--seconds", "inf"], "--seconds", "86,400"),
    (["generate", "--seconds", "1e6", "--tps", "1"], "--seconds", "86,400"),
    (["generate", "--market", "--opportunities", "1e12"], "--opportunities", "20,000,000"),
    (["live", "--source", "udp", "--ports", "0", "--duration", "0.1"], "--ports: '0'", "1-65535"),
    (["live", "--source", "udp", "--ports", "0-3,8003", "--duration", "0.1"], "--ports: '0-3'", "1-65535"),
])
def test_nonfinite_absurd_and_zero_flags_are_refused_with_flag_and_limit(tmp_path, args, flag, limit):
    """The class of item 11: inf, nan, 0, negatives and values that would exhaust memory or time."""
    if args[0] == "generate":
        args = args + ["--out", str(tmp_path / "g.pcap")]
    else:
        args = args + ["--out", str(tmp_path / "o")] if args[0] != "send" else args
    if args[0] in ("replay", "live"):
        args += ["--no-db"]
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())            # rich wraps long messages
    assert flag in out and limit in out, out
    assert "Traceback" not in r.output and not (tmp_path / "o").exists() and not (tmp_path / "g.pcap").exists()


def test_send_too_many_frames_is_refused_before_sending():
    import os
    if os.geteuid() != 0:
        pytest.skip("opening an AF_PACKET sender needs root")
    r = runner.invoke(app, SEND + ["--loop", "1000000"])
    assert r.exit_code == 2 and "--loop" in r.output and "100,000,000" in " ".join(r.output.split()), r.output


@pytest.mark.parametrize("tsresol", [73, 28, 0xC0])
def test_unreadable_tsresol_is_a_message_in_replay_inspect_and_send(tmp_path, tsresol):
    from test_capture_headers import pcapng
    cap = tmp_path / "res.pcapng"
    cap.write_bytes(pcapng(tsresol))
    import os
    cases = [["replay", str(cap), "--out", str(tmp_path / "o"), "--quiet", "--no-db"], ["inspect", str(cap), "0"]]
    if os.geteuid() == 0:           # send opens its AF_PACKET socket before it reads the capture
        cases.append(["send", str(cap), "-i", "lo", "--topspeed"])
    for args in cases:
        r = runner.invoke(app, args)
        out = " ".join(r.output.split())
        assert r.exit_code in (2, 3) and "if_tsresol" in out and "+0x1c" in out, (args, r.output)
        assert "Traceback" not in r.output and not isinstance(r.exception, ZeroDivisionError)
