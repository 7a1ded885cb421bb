"""Store DSNs: the forms the workbench accepts, checked and split into a ``Dsn``.

Forms (``--db``, ``WORKBENCH_DB``, the config's ``db``; default ``chdb:///<data_dir>/clickhouse``,
``Settings.db_dsn``):

* ``chdb:///abs/dir``                    embedded, persistent, created on first use
* ``chdb:///abs/dir?database=name``      ... in another database than ``default``
* ``chdb://memory``                      embedded, in memory (tests)
* ``http://user:password@host:8123/db``  a server (``https://...:8443`` for TLS); the database
  is created if missing. Query options: connect_timeout, send_receive_timeout (whole seconds:
  they override the config's store_connect_timeout_s, store_read_timeout_s), compress,
  verify, ca_cert, client_name, query_retries.

A bad DSN raises ``StoreError`` naming the mistake and the right form.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlparse

from ..config import INT_RANGES
from ..errors import StoreError
from . import schema as S

_HTTP_OPTIONS = {"connect_timeout": int, "send_receive_timeout": int, "compress": str, "verify": str,
                 "ca_cert": str, "client_name": str, "query_retries": int}
# Options that bound a wait, in whole seconds (the driver takes ints): the same range as the
# config's store_connect_timeout_s / store_read_timeout_s (config.INT_RANGES), which they override.
_DEADLINE_OPTIONS = {"connect_timeout": "store_connect_timeout_s", "send_receive_timeout": "store_read_timeout_s"}
DSN_HELP = ("DSN forms: chdb:///abs/dir (embedded, default chdb:///<data_dir>/clickhouse), "
            "http://user:password@host:8123/database, https://user:password@host:8443/database")


@dataclass(frozen=True)
class Dsn:
    text: str                       # as given (may hold a password: print ``redacted()``)
    scheme: str                     # "chdb" | "http" | "https"
    path: str | None = None         # chdb directory; None = in memory
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = "default"
    options: dict = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.scheme == "chdb"

    def redacted(self) -> str:
        if self.embedded:
            return f"chdb://{self.path}" if self.path else "chdb://memory"
        auth = f"{self.user}:***@" if self.password else (f"{self.user}@" if self.user else "")
        return f"{self.scheme}://{auth}{self.host}:{self.port}/{self.database}"

    @property
    def target(self) -> str:
        """Which store and database this DSN writes to, with no password: what a spool file
        records, so that its rows go where they were meant to (``chdb:///dir?database=mev``,
        ``http://user@host:8123/mev``). Two DSNs with the same target are the same store."""
        if self.embedded:
            where = f"chdb://{self.path}" if self.path else "chdb://memory"
            return where + (f"?database={self.database}" if self.database != "default" else "")
        user = f"{self.user}@" if self.user else ""
        return f"{self.scheme}://{user}{self.host.lower()}:{self.port}/{self.database}"

    def __str__(self) -> str:
        return self.redacted()


def _bad_dsn(text: str, why: str) -> StoreError:
    shown = re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", text)
    return StoreError(f"bad store DSN {shown!r}: {why}. {DSN_HELP}")


def parse_dsn(text: str) -> Dsn:
    """Check a DSN and split it; raise StoreError naming the mistake and the right form."""
    if not isinstance(text, str) or not text.strip():
        raise _bad_dsn(str(text), "it is empty")
    text = text.strip()
    u = urlparse(text)
    scheme = u.scheme.lower()
    if scheme in ("clickhouse", "tcp", "native"):
        raise _bad_dsn(text, "the native TCP protocol (port 9000) is not spoken here; "
                             "clickhouse-connect uses HTTP: http://host:8123/database")
    if scheme not in ("chdb", "http", "https"):
        raise _bad_dsn(text, f"unknown scheme {u.scheme!r}" if u.scheme else "no scheme")
    query = {k: v[-1] for k, v in parse_qs(u.query).items()}
    if scheme == "chdb":
        database = query.pop("database", "default")
        if query:
            raise _bad_dsn(text, f"unknown chdb option(s) {sorted(query)}; only ?database=NAME")
        if u.netloc in ("memory", ":memory:") and u.path in ("", "/"):
            path = None
        elif u.netloc:
            raise _bad_dsn(text, f"{u.netloc + u.path!r} is not an absolute path; write chdb:///abs/dir "
                                 "(three slashes) or chdb://memory")
        elif not u.path.startswith("/"):
            raise _bad_dsn(text, "the chdb directory must be an absolute path: chdb:///abs/dir")
        else:
            path = os.path.normpath(unquote(u.path))
        try:
            S.check_identifier(database, "database")
        except ValueError as e:
            raise _bad_dsn(text, str(e)) from None
        return Dsn(text, "chdb", path=path, database=database)
    if not u.hostname:
        raise _bad_dsn(text, "no host; write http://user:password@host:8123/database")
    try:
        port = u.port or (8443 if scheme == "https" else 8123)
    except ValueError:
        raise _bad_dsn(text, "the port is not a number in 1-65535") from None
    parts = [p for p in u.path.split("/") if p]
    if len(parts) > 1:
        raise _bad_dsn(text, f"the path {u.path!r} must be one database name")
    database = unquote(parts[0]) if parts else query.pop("database", "default")
    try:
        S.check_identifier(database, "database")
    except ValueError as e:
        raise _bad_dsn(text, str(e)) from None
    options = {}
    for k, v in query.items():
        if k not in _HTTP_OPTIONS:
            raise _bad_dsn(text, f"unknown option {k!r}; known: {', '.join(sorted(_HTTP_OPTIONS))}")
        try:
            options[k] = _HTTP_OPTIONS[k](v)
        except ValueError:
            raise _bad_dsn(text, f"option {k}={v!r} is not a {_HTTP_OPTIONS[k].__name__}") from None
        if k in _DEADLINE_OPTIONS:
            lo, hi, _ = INT_RANGES[_DEADLINE_OPTIONS[k]]
            if not lo <= options[k] <= hi:
                raise _bad_dsn(text, f"option {k}={v!r}: allowed whole seconds in [{lo}, {hi}]")
        elif k == "query_retries" and options[k] < 0:
            raise _bad_dsn(text, f"option {k}={v!r}: allowed an integer >= 0")
    return Dsn(text, scheme, host=u.hostname, port=port, user=unquote(u.username or ""),
               password=unquote(u.password or ""), database=database, options=options)
