"""The committed Geyser stubs (workbench/chain/geyser/) equal ones freshly generated from the
committed protos, and the protos are the upstream files their SOURCES.md names (its sha256
sums; and ../shared's copies where that folder is present)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from workbench.chain.geyser import regenerate

SHARED_PROTOS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "chain" / "proto" / "yellowstone-grpc"


def test_committed_stubs_equal_fresh_ones():
    pytest.importorskip("grpc_tools")
    fresh = regenerate.generate()
    assert set(fresh) == set(regenerate.MODULES)
    for name, text in fresh.items():
        assert (regenerate.HERE / name).read_text() == text, f"{name} is stale: run python -m workbench.chain.geyser.regenerate"


def test_protos_are_the_upstream_files():
    recorded = dict(re.findall(r"\| `([\w.-]+\.proto)` \| `([0-9a-f]{64})` \|",
                               (regenerate.PROTO_DIR / "SOURCES.md").read_text()))
    assert set(recorded) == set(regenerate.PROTOS)
    for name in regenerate.PROTOS:
        data = (regenerate.PROTO_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == recorded[name], name
        if SHARED_PROTOS.is_dir():
            assert data == (SHARED_PROTOS / name).read_bytes(), name
    assert "Apache License" in (regenerate.PROTO_DIR / "LICENSE_APACHE2").read_text()


def test_stubs_import_relative_and_carry_subscribe():
    from workbench.chain.geyser import geyser_pb2, geyser_pb2_grpc
    assert hasattr(geyser_pb2_grpc.GeyserStub, "__init__")
    req = geyser_pb2.SubscribeRequest()
    req.accounts["pools"].account.append("5y2QYKY8")
    assert geyser_pb2.SubscribeRequest.FromString(req.SerializeToString()).accounts["pools"].account == ["5y2QYKY8"]
