"""nginx's config in the inference image: key auth and the payload cap in front of the server.

azureml-inference-server-http has no auth of its own (Azure's front end does it), so nginx
from the distro (Azure's inference bases ship it) stands in front, as the contract with
`layerkit serve` says (README "Deploying"):
- it listens on serve.port and proxies to the server on a unix socket named after
  SERVER_PORT (never TCP: on the host's network that would be open to every local user
  without a key); both ports are the image's defaults ($LAYERKIT_PORT, $LAYERKIT_SERVER_PORT), which templates/layerkit-serve
  writes into LISTEN_CONF and UPSTREAM_CONF at start, so a container on the host's network
  can take other ports (`docker run -e LAYERKIT_PORT=...`) without a new image;
- the liveness and readiness routes answer without a key (probes cannot carry one) and map
  to the server's `/`; the scoring route maps to its `/score`; every other path is proxied as
  it is; all but the probes need `Authorization: Bearer <key>` when auth is key;
- the keys are never here: templates/layerkit-serve writes KEYS_CONF from the mounted keys
  at start and on `layerkit-serve reload` (a map of the accepted header values);
- the Authorization header is not passed on: the server (and a score.py logging its
  headers) never sees a key;
- a body above max_request_mb (decimal MB, so "101 MB" is refused whichever MB the client
  meant) gets 413 before any of it is read or passed on.
Every value here is a validated route (spec/servecheck.py), an int or a constant of ours.
"""

from __future__ import annotations

from layerkit.errors import SpecError
from layerkit.spec.serve import ServeSettings

SERVER_PORT = 31311  # azmlinfsrv's "port": its socket is RUN_DIR/server:PORT
RUN_DIR = "/tmp/layerkit-serve"  # nginx's pid, temp files and the key map: writable by any user
KEYS_CONF = f"{RUN_DIR}/keys.conf"
LISTEN_CONF = f"{RUN_DIR}/listen.conf"  # `listen PORT;`
UPSTREAM_CONF = f"{RUN_DIR}/upstream.conf"  # `server unix:RUN_DIR/server.sock;`
KEY_VARIABLE = "$layerkit_key"  # 1 when the Authorization header carries an accepted key


def _location(route: str, upstream_path: str | None, key: bool, timeout_ms: int) -> list[str]:
    """`location = route` (exact) proxied to upstream_path; None: the catch-all, path kept."""
    head = f"location = {route} {{" if upstream_path is not None else "location / {"
    target = f"http://layerkit_server{upstream_path or ''}"
    body = [f"if ({KEY_VARIABLE} = 0) {{ return 401; }}"] if key else []
    # The key stops here: a score.py that logs its request headers must not log it.
    body += [
        f"proxy_pass {target};",
        'proxy_set_header Authorization "";',
        f"proxy_read_timeout {timeout_ms}ms;",
    ]
    return [f"        {head}", *(f"            {line}" for line in body), "        }"]


def nginx_conf(s: ServeSettings) -> str:
    key = s.auth == "key"
    if s.scoring_route in (s.liveness_route, s.readiness_route):
        raise SpecError(
            f"serve.scoring_route {s.scoring_route} is also a probe route, which answers without a key; "
            "give scoring a route of its own"
        )
    locations: list[str] = []
    for route in dict.fromkeys((s.liveness_route, s.readiness_route)):
        locations += _location(route, "/", False, s.scoring_timeout_ms)
    locations += _location(s.scoring_route, "/score", key, s.scoring_timeout_ms)
    # The prefix `/` matches every other path; an exact `= /` of a probe still wins for `/`.
    locations += _location("/", None, key, s.scoring_timeout_ms)
    temp = "".join(
        f"    {kind}_temp_path {RUN_DIR}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # The key map's entries are case-sensitive regexes (`~^Bearer KEY$`), never exact strings,
    # which nginx's map compares ignoring case.
    keys = f"    include {KEYS_CONF};\n" if key else ""
    return (
        "# Written by layerkit (render/nginxconf.py): key auth and the payload cap in front of\n"
        "# azureml-inference-server-http. Started by /usr/local/bin/layerkit-serve, as any user.\n"
        "worker_processes 1;\n"
        f"pid {RUN_DIR}/nginx.pid;\n"
        "error_log stderr warn;\n"
        "events {\n    worker_connections 1024;\n}\n"
        "http {\n"
        "    access_log off;\n"
        f"{temp}"
        f"    client_max_body_size {s.max_request_mb * 1_000_000};\n"
        f"{keys}"
        f"    upstream layerkit_server {{\n        include {UPSTREAM_CONF};\n    }}\n"
        "    server {\n"
        f"        include {LISTEN_CONF};\n" + "\n".join(locations) + "\n    }\n}\n"
    )
