"""Property tests (hypothesis) of the settings: any TOML value of any type for any field, and
any string for any WORKBENCH_* variable, either loads into valid Settings or raises
ConfigError naming the field; never another exception."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.config import INT_RANGES, Settings, load_settings
from workbench.errors import ConfigError

pytestmark = pytest.mark.fuzz
FUZZ = settings(max_examples=int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", "400")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

FIELDS = [f.name for f in dataclasses.fields(Settings)]
VARS = [f"WORKBENCH_{n.upper()}" for n in FIELDS] + ["WORKBENCH_CONFIG"]


def toml_value(v) -> str:
    """``v`` as TOML text (strings escaped so that any code point but a surrogate round-trips)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + "".join(c if " " <= c <= "~" and c not in '"\\' else
                             (f"\\u{ord(c):04X}" if ord(c) < 0x10000 else f"\\U{ord(c):08X}") for c in v) + '"'
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{ " + ", ".join(f"{toml_value(k)} = {toml_value(x)}" for k, x in v.items()) + " }"


# TOML integers are 64-bit; near-boundary numbers of every field make ranges meet their edges
edges = st.sampled_from(sorted({x + d for lo, hi, _ in INT_RANGES.values() for x in (lo, hi) for d in (-1, 0, 1)}))
scalars = st.one_of(
    st.integers(-2**63, 2**63 - 1), edges, st.floats(), st.sampled_from([math.inf, -math.inf, math.nan]), st.booleans(),
    st.text(st.characters(exclude_categories=("Cs",))), st.sampled_from(["hash", "lb", "127.0.0.1", "8001-8003", "0x40"]),
    st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)), st.dates(), st.times())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                      st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


def _loads_or_config_error(**kw):
    try:
        s = load_settings(**kw)
    except ConfigError as e:
        assert str(e)
        return None
    assert isinstance(s, Settings)
    assert s.validate() == s
    for f in dataclasses.fields(Settings):    # valid means of the field's type and in its range
        v = getattr(s, f.name)
        assert type(v) is type(f.default), (f.name, v)
        if f.name in INT_RANGES:
            lo, hi, _ = INT_RANGES[f.name]
            assert lo <= v <= hi, (f.name, v)
    return s


@FUZZ
@given(field=st.sampled_from(FIELDS) | st.text(min_size=1, max_size=8), value=values, table=st.booleans())
def test_any_toml_value_for_any_field_loads_or_is_a_config_error(tmp_path_factory, field, value, table):
    path = tmp_path_factory.mktemp("toml") / "c.toml"
    text = (f"[workbench]\n" if table else "") + f"{toml_value(field)} = {toml_value(value)}\n"
    assert tomllib.loads(text)    # the property is about values, not TOML syntax
    path.write_text(text, encoding="utf-8")
    s = _loads_or_config_error(config_file=path, environ={})
    if s is not None:
        assert field in FIELDS


@FUZZ
@given(env=st.dictionaries(st.sampled_from(VARS), st.text() | st.integers().map(str) | st.floats().map(str) | edges.map(str),
                           max_size=4))
def test_any_string_for_any_workbench_variable_loads_or_is_a_config_error(env):
    _loads_or_config_error(environ=env)


@FUZZ
@given(field=st.sampled_from(FIELDS), value=values)
def test_any_value_in_code_or_flags_validates_or_is_a_config_error(field, value):
    _loads_or_config_error(environ={}, **{field: value})
    try:
        Settings(**{field: value}).validate()
    except ConfigError:
        pass
