"""The NIC settings only the kernel's ethtool interface knows (channels, rings, interrupt
coalescing, offload features), through pyroute2's ethtool binding, on the live host, in the
caller's network namespace.

A group the driver does not implement (veth has no rings or coalescing) reads as
``UNSUPPORTED`` and is reported as such, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import TuneError

UNSUPPORTED = "not supported by this driver"
# Offloads live mode cares about: receive-side merging changes what the capture sees.
FEATURES = ("rx-gro", "rx-lro", "rx-udp-gro-forwarding", "rx-gro-list", "tx-generic-segmentation",
            "tx-tcp-segmentation")
CHANNEL_KEYS = ("rx_count", "tx_count", "other_count", "combined_count")
RING_KEYS = ("rx", "tx")                             # their maxima: rx_max, tx_max
COALESCE_KEYS = ("rx_coalesce_usecs", "tx_coalesce_usecs", "rx_max_coalesced_frames", "use_adaptive_rx_coalesce")


@dataclass
class EthtoolReading:
    channels: dict | str = UNSUPPORTED       # *_count and max_* (pyroute2 names), or UNSUPPORTED
    rings: dict | str = UNSUPPORTED          # rx, tx and rx_max, tx_max (descriptors)
    coalesce: dict | str = UNSUPPORTED
    features: dict = field(default_factory=dict)   # name -> (on, changeable)


def _ethtool():
    try:
        from pyroute2.ethtool import Ethtool
    except ImportError as e:                 # pragma: no cover - a dependency of the package
        raise TuneError(f"pyroute2 is needed to read NIC settings ({e}); pip install pyroute2") from None
    return Ethtool()


def _errors():
    from pyroute2.ethtool.ioctl import NoSuchDevice, NotSupportedError
    return NoSuchDevice, NotSupportedError


def _group(fn, iface: str):
    NoSuchDevice, NotSupportedError = _errors()
    try:
        value = fn(iface)
    except NoSuchDevice:
        raise TuneError(f"--iface {iface}: no such interface") from None
    except (NotSupportedError, OSError):
        return UNSUPPORTED
    items = value._asdict().items() if hasattr(value, "_asdict") else dict(value).items()
    return {k: int(v) for k, v in items if isinstance(v, (int, bool)) and k != "cmd"}   # None: not reported


def read_ethtool(iface: str) -> EthtoolReading:
    """Everything ethtool -l/-g/-c/-k would show for the groups live mode tunes."""
    eth = _ethtool()
    try:
        rd = EthtoolReading(channels=_group(eth.get_channels, iface), rings=_group(eth.get_rings, iface),
                            coalesce=_group(eth.get_coalesce, iface))
        NoSuchDevice, NotSupportedError = _errors()
        try:
            feats = eth.get_features(iface).features
            rd.features = {n: (bool(feats[n].enable), bool(feats[n].available)) for n in FEATURES if n in feats}
        except NoSuchDevice:
            raise TuneError(f"--iface {iface}: no such interface") from None
        except (NotSupportedError, OSError):
            pass
        return rd
    finally:
        eth.close()


def set_group(iface: str, group: str, values: dict) -> None:
    """Set some ``channels``/``rings``/``coalesce`` fields (the others kept); OSError or a
    TuneError on refusal."""
    eth = _ethtool()
    NoSuchDevice, NotSupportedError = _errors()
    try:
        if group == "rings":
            eth.set_rings(iface, **values)               # pyroute2 takes ring sizes as keywords
        else:
            {"channels": eth.set_channels, "coalesce": eth.set_coalesce}[group](iface, dict(values))
    except NoSuchDevice:
        raise TuneError(f"{iface}: no such interface") from None
    except NotSupportedError:
        raise TuneError(f"{iface}: {group} {UNSUPPORTED}") from None
    finally:
        eth.close()


def set_feature(iface: str, name: str, on: bool) -> None:
    eth = _ethtool()
    NoSuchDevice, NotSupportedError = _errors()
    try:
        feats = eth.get_features(iface)
        if name not in feats.features:
            raise TuneError(f"{iface}: no offload feature {name!r}")
        feats.features[name].enable = bool(on)
        eth.set_features(iface, feats)
    except NoSuchDevice:
        raise TuneError(f"{iface}: no such interface") from None
    except NotSupportedError:
        raise TuneError(f"{iface}: feature {name} {UNSUPPORTED}") from None
    finally:
        eth.close()
