"""The committed Geyser stubs (workbench/chain/geyser/) equal ones freshly generated from the
committed protos, and the protos are the fixture copies (same bytes, same provenance)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.chain.geyser import regenerate

FIXTURE_PROTOS = Path(__file__).parent / "fixtures" / "chain" / "proto" / "yellowstone-grpc"


def test_committed_stubs_equal_fresh_ones():
    pytest.importorskip("grpc_tools")
    fresh = regenerate.generate()
    assert set(fresh) == set(regenerate.MODULES)
    for name, text in fresh.items():
        assert (regenerate.HERE / name).read_text() == text, f"{name} is stale: run python -m workbench.chain.geyser.regenerate"


def test_protos_are_the_fixture_copies():
    for name in regenerate.PROTOS:
        assert (regenerate.PROTO_DIR / name).read_bytes() == (FIXTURE_PROTOS / name).read_bytes(), name
    assert "Apache License" in (regenerate.PROTO_DIR / "LICENSE_APACHE2").read_text()


def test_stubs_import_relative_and_carry_subscribe():
    from workbench.chain.geyser import geyser_pb2, geyser_pb2_grpc
    assert hasattr(geyser_pb2_grpc.GeyserStub, "__init__")
    req = geyser_pb2.SubscribeRequest()
    req.accounts["pools"].account.append("5y2QYKY8")
    assert geyser_pb2.SubscribeRequest.FromString(req.SerializeToString()).accounts["pools"].account == ["5y2QYKY8"]
