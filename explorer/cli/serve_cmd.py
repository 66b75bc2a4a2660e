"""``explorer serve WS``: serve the dashboard at ``http://ADDRESS:PORT/`` (127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from explorer.errors import ExplorerError
from explorer.workspace import Workspace

log = logging.getLogger(__name__)


def register(sub) -> None:
    """Add the ``serve`` command to ``sub`` (argparse subparsers)."""
    p = sub.add_parser(
        "serve",
        help="serve the dashboard in a browser",
        description="Serve the dashboard for a workspace at http://ADDRESS:PORT/ . Every browser "
        "session gets its own selection; all share the data (loaded once) and the label store.",
    )
    p.add_argument("workspace", type=Path)
    p.add_argument("--port", type=int, default=5006, help="port (default 5006; 0 picks a free one)")
    p.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for everyone)",
    )
    p.add_argument(
        "--basic-auth",
        default=None,
        help="a password, or a JSON file of user: password pairs (each label is recorded under its user), "
        "that visitors must give",
    )
    p.add_argument(
        "--cookie-secret", default=None, help="secret that signs login cookies (use with --basic-auth)"
    )
    p.add_argument(
        "--allow-websocket-origin",
        action="append",
        default=None,
        metavar="HOST[:PORT]",
        help="extra origins allowed to connect (e.g. a proxy's host name); repeatable",
    )
    p.add_argument(
        "--num-procs",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port (default 1). Each process runs its sessions on its own core "
        "and loads the workspace itself (memory x N); labels are shared through the workspace's label store. "
        "0: one per CPU core",
    )
    show = p.add_mutually_exclusive_group()
    show.add_argument("--show", dest="show", action="store_true", help="open the app in a browser")
    show.add_argument("--no-show", dest="show", action="store_false", help="do not open a browser (default)")
    p.set_defaults(func=cmd_serve, show=False)


def cmd_serve(args) -> int:
    """``explorer serve``: serve the dashboard for a workspace (see :func:`serve_workspace`)."""
    return serve_workspace(
        args.workspace,
        port=args.port,
        address=args.address,
        show=args.show,
        basic_auth=args.basic_auth,
        cookie_secret=args.cookie_secret,
        websocket_origin=args.allow_websocket_origin,
        num_procs=args.num_procs,
    )


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_basic_auth(value: str | None) -> str | None:
    """``--basic-auth`` as Panel should get it: a password, or the absolute path of a JSON file of users.

    A value ending in ``.json`` must be a readable JSON object of user: password strings (an existing file of
    any name is read as one too); otherwise Panel would silently take a mistyped file name as the password.
    """
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        if path.suffix.lower() == ".json":
            raise ExplorerError(
                f"--basic-auth {value}: no such users file; write a JSON file of user: password pairs"
            )
        return value
    try:
        users = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ExplorerError(f"--basic-auth {value}: unreadable users file ({err}); it must be JSON") from err
    if not (
        isinstance(users, dict)
        and users
        and all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in users.items())
    ):
        raise ExplorerError(
            f'--basic-auth {value}: must be a JSON object of user: password strings, e.g. {{"alice": "..."}}'
        )
    return str(path.resolve())


def _origins(address: str, port: int, extra: list[str] | None) -> list[str]:
    hosts = {address} | (
        {"localhost", "127.0.0.1"} if address in ("127.0.0.1", "localhost", "0.0.0.0", "::") else set()
    )
    origins = [f"{h}:{port}" for h in sorted(hosts)]
    return origins + list(extra or [])


def serve_workspace(
    path: str | Path,
    port: int = 5006,
    address: str = "127.0.0.1",
    show: bool = False,
    basic_auth: str | None = None,
    cookie_secret: str | None = None,
    websocket_origin: list[str] | None = None,
    warm: bool = True,
    num_procs: int = 1,
) -> int:
    """Serve the dashboard for the workspace at ``path`` until interrupted; returns the exit code.

    Parameters
    ----------
    path : str or Path
        The workspace folder.
    port : int
        0 picks a free port (the URL is printed).
    address : str
        Where to listen; 127.0.0.1 keeps the app private to this machine.
    show : bool
        Open the app in a browser.
    basic_auth, cookie_secret : str, optional
        Passed to Panel: visitors log in, and labels record who they are (``pn.state.user``).
    websocket_origin : list of str, optional
        Extra allowed origins.
    warm : bool
        Load the data and compile the plotting kernels before accepting visitors.
    num_procs : int
        Server processes sharing the port (0: one per CPU core). A Bokeh server runs every session's callbacks
        on one event loop, so one process uses one core however many people are connected; with N processes
        sessions are spread over N cores. Each process loads and warms up the workspace after the fork (no
        thread pool crosses a fork); labels meet in the workspace's SQLite store, which every session polls.
    """
    import socket

    import panel as pn

    from explorer.app.serve import app_factory, warm_up

    ws = Workspace.open(path)
    basic_auth = check_basic_auth(basic_auth)
    if address not in LOOPBACK and not basic_auth:
        print(
            f"Warning: serving on {address} without --basic-auth: anyone who can reach this port can see the "
            "workspace and write labels.",
            file=sys.stderr,
            flush=True,
        )
    if port == 0:
        with socket.socket() as s:
            s.bind((address, 0))
            port = s.getsockname()[1]
    if cookie_secret is None and basic_auth:
        import secrets

        cookie_secret = secrets.token_hex(32)
    if num_procs < 0:
        raise ExplorerError(f"--num-procs {num_procs}: give 1 or more processes, or 0 for one per CPU core")
    num_procs = num_procs or os.cpu_count() or 1
    if warm and num_procs == 1:
        warm_up(ws.path)
    url = f"http://{address}:{port}/"
    procs = f" in {num_procs} processes" if num_procs > 1 else ""
    print(f"Explorer serving {ws.path} at {url}{procs} (Ctrl-C stops it)", flush=True)
    parent = os.getpid()
    try:
        server = pn.serve(
            {"/": app_factory(ws.path)},
            port=port,
            address=address,
            show=show and num_procs == 1,
            title="Astro Embedding Explorer",
            websocket_origin=_origins(address, port, websocket_origin),
            basic_auth=basic_auth,
            cookie_secret=cookie_secret,
            verbose=False,
            threaded=False,
            num_procs=num_procs,
            start=num_procs == 1,
        )
    except OSError as err:
        raise ExplorerError(f"cannot listen on {address}:{port} ({err}); choose another --port") from err
    if num_procs > 1:  # here in each forked process: load the data, then take visitors
        _exit_with_parent(parent)
        if warm:
            warm_up(ws.path)
        server.start()
        server.io_loop.start()
    return 0


def _exit_with_parent(parent: int) -> None:
    """In a process forked from ``parent``: be terminated when ``parent`` goes (``kill PID`` of the ``explorer
    serve`` process must not leave servers running on the port). Linux only; elsewhere a no-op."""
    import ctypes
    import signal

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        log.debug("prctl unavailable: forked servers will not follow their parent")
        return
    if os.getppid() != parent:  # the parent went before the request took effect
        os._exit(0)
