"""``metalab ui``: serve the dashboard with uvicorn and say how to reach it."""

from __future__ import annotations

import getpass
import os
import socket

from metalab_smk.errors import MetalabError

__all__ = ["access_lines", "serve"]


def access_lines(host: str, port: int) -> list[str]:
    """The URL to open, and the ``ssh -L`` line that reaches it from a laptop."""
    shown = "127.0.0.1" if host in ("127.0.0.1", "localhost", "0.0.0.0", "::") else host
    lines = [f"metalab ui: serving on http://{shown}:{port}/  (Ctrl-C stops it)"]
    lines.append(
        "from your laptop (when this runs on a remote or login node), open a tunnel and browse "
        f"http://127.0.0.1:{port}/ :"
    )
    lines.append(f"  ssh -N -L {port}:127.0.0.1:{port} {getpass.getuser()}@{socket.gethostname()}")
    return lines


def serve(
    path: str | os.PathLike[str] | list[str] | None,
    host: str = "127.0.0.1",
    port: int = 8000,
    db: str | None = None,
) -> None:
    """Serve the dashboard over ``path``: a store root or an experiment directory, several
    of them, or directories with stores below them (see ``open_source``)."""
    try:
        import uvicorn

        from metalab_smk.ui.server import build_app
    except ImportError as exc:
        raise MetalabError(
            f"the dashboard needs the 'ui' extra ({exc.name} is missing): "
            'pip install "metalab-smk[ui]"'
        ) from None
    from metalab_smk.ui.open import open_source

    source = open_source(path, db)
    extra = [] if host in ("127.0.0.1", "localhost", "::1") else [host, socket.gethostname()]
    if host in ("0.0.0.0", "::"):
        extra = ["*"]  # listening everywhere: the user chose to accept any name
    app = build_app(source, allowed_hosts=extra)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    try:
        sock = config.bind_socket()
    except SystemExit:
        raise MetalabError(f"cannot listen on {host}:{port}; choose another --port") from None
    for line in access_lines(host, port):
        print(line, flush=True)
    server.run(sockets=[sock])
