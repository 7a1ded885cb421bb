"""Who may use a page: the apps run replays and read files on the server, so a page served
beyond this machine must be closed to strangers.

``panel serve`` listens on every interface unless told ``--address``; a Bokeh client on
another host could then open sessions and drive replays. The apps therefore look at the
sockets their own server process listens on (``/proc/self/fd`` against ``/proc/net/tcp*``,
whatever way the server was started) and, when any of them is reachable from another
host, refuse every session that neither presents the access token (``?token=...``, compared
in constant time) nor comes through Panel's own authentication (``--basic-auth`` or OAuth,
which sign the ``user`` cookie). On loopback only, no token is needed unless one is set.

The token comes from ``--token-file FILE`` (the file's first line; a file keeps it out of
``ps``) or the ``WORKBENCH_VIEWS_TOKEN`` variable, and must be at least TOKEN_CHARS_MIN
characters.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path

TOKEN_ENV = "WORKBENCH_VIEWS_TOKEN"
TOKEN_ARG = "token"                 # the session argument (URL query) that carries it
TOKEN_CHARS_MIN = 16                # shorter tokens are refused: guessable over a network
TCP_LISTEN = "0A"                   # st column of /proc/net/tcp for a listening socket


def _decode(hex_addr: str) -> tuple[str, int]:
    """/proc/net/tcp{,6} 'ADDR:PORT' (ADDR as 32-bit words in host order) -> (address, port)."""
    a, p = hex_addr.split(":")
    raw = bytes.fromhex(a)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))   # each word is little-endian
    return str(ipaddress.ip_address(raw)), int(p, 16)


def listening_addresses() -> list[tuple[str, int]]:
    """(address, port) of every TCP socket this process listens on; None when /proc cannot tell."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == TCP_LISTEN and f[9] in inodes:
                out.append(_decode(f[1]))
    return out


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def exposed_addresses() -> list[str]:
    """'address:port' of the listening sockets another host could reach (all of them when /proc
    shows none: better refuse than guess)."""
    socks = listening_addresses()
    if not socks:
        return ["(unknown: /proc shows no listening socket of this server)"]
    return [f"{a}:{p}" for a, p in socks if not is_loopback(a)]


def configured_token(token_file: str | None) -> tuple[str | None, str | None]:
    """(token, problem): the token from ``--token-file`` or WORKBENCH_VIEWS_TOKEN, or a message."""
    if token_file:
        try:
            lines = Path(token_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            return None, f"The token file `{token_file}` cannot be read ({type(e).__name__}); no session is allowed."
        token = lines[0].strip() if lines else ""
        source = f"the token file {token_file}"
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            return None, None
        source = TOKEN_ENV
    if len(token) < TOKEN_CHARS_MIN:
        return None, (f"The access token in {source} is shorter than {TOKEN_CHARS_MIN} characters; no session is "
                      f"allowed. Use e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`.")
    return token, None


def session_token() -> str:
    """The token this session presented (``?token=...``), '' without one."""
    import panel as pn
    vals = pn.state.session_args.get(TOKEN_ARG) or []
    try:
        return vals[0].decode("utf-8") if vals else ""
    except UnicodeDecodeError:
        return ""


def authenticated_user() -> str | None:
    """The user Panel's own auth (``--basic-auth``, OAuth) signed in, or None."""
    import panel as pn
    try:
        user = pn.state.user
    except Exception:          # no cookie secret, a damaged cookie: nobody signed in
        return None
    return user if user and user != "guest" else None


def refusal(token_file: str | None, app: str) -> str | None:
    """Why this session may not use the app, or None when it may. Decided before anything runs."""
    token, problem = configured_token(token_file)
    if problem:
        return problem
    if token is not None:
        if hmac.compare_digest(session_token().encode(), token.encode()) or authenticated_user():
            return None
        return (f"This page needs the access token: open it as `.../{app}?{TOKEN_ARG}=TOKEN` "
                f"(the token of `--token-file` or `{TOKEN_ENV}`).")
    exposed = exposed_addresses()
    if not exposed or authenticated_user():
        return None
    return (f"This server listens on {', '.join(exposed)}, which other hosts can reach, and no access token is set, "
            f"so the app does not run. Serve it on loopback: `panel serve panel_apps/{app}.py --address 127.0.0.1 "
            f"--allow-websocket-origin 127.0.0.1:PORT`, or set a token (`--args --token-file FILE` or "
            f"`{TOKEN_ENV}`) and open `.../{app}?{TOKEN_ARG}=TOKEN`, or use Panel's `--basic-auth`.")
