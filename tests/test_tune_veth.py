"""Host tuning on a veth pair inside a network namespace the test makes (issue #20): check
reads its channels and offloads through the kernel's ethtool interface; apply changes what
veth allows (channels, offloads, the per-namespace net.core.somaxconn), revert restores
every value exactly; what veth lacks (rings, coalescing, LRO) is reported as such. Every
command runs inside the namespace, so the host's own settings are never touched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2 to make a network namespace")


def _sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60)


@pytest.fixture
def ns():
    """A namespace holding both ends of a veth pair; deleted (with the pair) afterwards."""
    tag = uuid.uuid4().hex[:6]
    name, a, b = f"wbtune-{tag}", f"wbu{tag}a", f"wbu{tag}b"
    _sh("ip", "netns", "add", name)
    try:
        _sh("ip", "-n", name, "link", "add", a, "type", "veth", "peer", "name", b)
        _sh("ip", "-n", name, "link", "set", a, "up")
        _sh("ip", "-n", name, "link", "set", b, "up")
        yield name, a
    finally:
        _sh("ip", "netns", "del", name, check=False)


def wb(ns_name, *args, check=True):
    r = subprocess.run(["ip", "netns", "exec", ns_name, sys.executable, "-m", "workbench.cli", "tune", *args],
                       capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def state(ns_name, iface) -> dict:
    """channels, offloads and somaxconn as the check reads them inside the namespace."""
    doc = json.loads(wb(ns_name, "check", "-i", iface, "--json").stdout)
    rows = {r["setting"]: r["now"] for r in doc["rows"]}
    somax = _sh("ip", "netns", "exec", ns_name, "cat", "/proc/sys/net/core/somaxconn").stdout.strip()
    return {"channels": rows["channels"], "rx-gro": rows["rx-gro"], "rx-gro-list": rows["rx-gro-list"],
            "somaxconn": somax, "rows": rows}


def _change(kind, target, key, value):
    return (f'\n[[change]]\nkind = "{kind}"\ntarget = "{target}"\nkey = "{key}"\ncurrent = ""\n'
            f'value = "{value}"\nwhy = "test"\n')


def test_check_reads_channels_offloads_and_says_what_veth_lacks(ns):
    name, iface = ns
    s = state(name, iface)
    assert s["channels"].startswith("rx 1/") and "tx 1/" in s["channels"]
    assert s["rx-gro"] in ("on", "off")
    assert s["rows"]["rx ring"] == "not supported by this driver"
    assert s["rows"]["rx-usecs (coalescing)"] == "not supported by this driver"
    assert s["rows"]["rx-lro"] == "off (fixed by the driver)"
    assert s["rows"]["driver"] == "none (virtual device)"


def test_apply_then_revert_restores_every_value(ns, tmp_path):
    name, iface = ns
    before = state(name, iface)
    plan = tmp_path / "plan.toml"
    wb(name, "plan", "-i", iface, "--areas", "nic", "--channels", "2", "-o", str(plan))
    text = plan.read_text()
    assert 'key = "rx_count"' in text and 'value = "2"' in text
    gro_on = before["rx-gro"] == "on"
    # a hand-edited plan: turn fraglist GRO on, and a per-namespace sysctl
    text += _change("feature", iface, "rx-gro-list", "on") + _change("sysctl", "net.core.somaxconn", "", "1024")
    plan.write_text(text)
    r = wb(name, "apply", str(plan))
    assert "revert file" in r.stdout
    after = state(name, iface)
    assert after["channels"].startswith("rx 2/")
    assert after["rx-gro-list"] == "on" and after["somaxconn"] == "1024"
    assert after["rx-gro"] == "off" or not gro_on
    wb(name, "revert", str(tmp_path / "plan.revert.toml"))
    back = state(name, iface)
    assert back == before


def test_unsupported_setting_is_reported_and_nothing_applied(ns, tmp_path):
    name, iface = ns
    before = state(name, iface)
    plan = tmp_path / "plan.toml"
    plan.write_text('all_or_nothing = true\n' + _change("channels", iface, "rx_count", "2")
                    + _change("rings", iface, "rx", "4096") + _change("feature", iface, "rx-lro", "on"))
    r = wb(name, "apply", str(plan), check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "rings not supported by this driver" in r.stderr and "rx-lro is fixed by the driver" in r.stderr
    assert "nothing changed" in r.stderr
    assert state(name, iface) == before and not (tmp_path / "plan.revert.toml").exists()


def test_kernel_refusal_mid_apply_undoes_what_was_applied(ns, tmp_path):
    """somaxconn above INT_MAX passes the plan's own checks; the kernel refuses it after the
    channels and the offload are already changed: both go back."""
    name, iface = ns
    before = state(name, iface)
    plan = tmp_path / "plan.toml"
    plan.write_text(_change("channels", iface, "rx_count", "2") + _change("feature", iface, "rx-gro-list", "on")
                    + _change("sysctl", "net.core.somaxconn", "", str(1 << 31)))
    r = wb(name, "apply", str(plan), check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "refused" in r.stderr and "somaxconn" in r.stderr and "undone" in r.stderr
    assert state(name, iface) == before and not (tmp_path / "plan.revert.toml").exists()


def test_a_global_sysctl_is_read_only_inside_the_namespace(ns, tmp_path):
    """net.core.rmem_max belongs to the host, not the namespace: refused before any write."""
    name, iface = ns
    before = state(name, iface)
    plan = tmp_path / "plan.toml"
    plan.write_text(_change("feature", iface, "rx-gro-list", "on") + _change("sysctl", "net.core.rmem_max", "", "1"))
    r = wb(name, "apply", str(plan), check=False)
    assert r.returncode == 2 and "read-only" in r.stderr and "nothing changed" in r.stderr
    assert state(name, iface) == before


def test_no_such_interface_in_the_namespace(ns):
    name, _ = ns
    r = wb(name, "check", "-i", "nope0", check=False)
    assert r.returncode == 2 and "nope0: no such interface" in r.stderr and "Traceback" not in r.stderr


def test_live_records_the_host_check_in_its_summary(ns, tmp_path):
    """`workbench live` runs the check's quick part at start: its verdicts are host notes in the
    printed summary and in summary.json."""
    name, iface = ns
    out = tmp_path / "live"
    r = subprocess.run(["ip", "netns", "exec", name, sys.executable, "-m", "workbench.cli", "live", "--iface", iface,
                        "--out", str(out), "--no-db", "--no-parquet", "--quiet", "--duration", "1", "--cpu", "0"],
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr
    notes = json.loads((out / "summary.json").read_text())["host"]
    check = [n for n in notes if n.startswith("host check: nic ")]
    assert len(check) == 1
    for area in ("nic", "irq", "sysctl", "cpu", "memory"):
        assert f"{area} " in check[0]
    assert "host: host check: nic " in r.stdout
    # and as data: the verdict per area, the settings found wanting, the warnings, the same verdicts as the line
    hc = json.loads((out / "summary.json").read_text())["host_check"]
    assert hc["iface"] == iface and hc["cpus"] == [0] and hc["error"] is None
    assert [a["area"] for a in hc["areas"]] == ["nic", "irq", "sysctl", "cpu", "memory"]
    for a in hc["areas"]:
        assert f"{a['area']} {a['verdict']}" in check[0]
        assert (a["verdict"] == "ok") == (a["wanting"] == [])
        assert all(set(w) == {"setting", "now", "recommended", "weight"} for w in a["wanting"])
    assert [f"host check: {w}" for w in hc["warnings"]] == [n for n in notes if n.startswith("host check: ")][1:]
