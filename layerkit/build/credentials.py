"""Registry credentials: the spec's named environment variables, then Docker's config
(auths, credHelpers, credsStore), as docker itself resolves them. Never echoed."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from layerkit.errors import RegistryError
from layerkit.spec.imageref import is_docker_hub


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def _docker_config(path: Path | None) -> dict[str, object]:
    if path is None:
        base = os.environ.get("DOCKER_CONFIG")
        path = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _helper(helper: str, host: str) -> Credentials | None:
    """`docker-credential-HELPER get`: none, or a non-zero exit (nothing for the host), is
    anonymous, as for docker; an answer not of the documented shape is an error (exit 3)."""
    name = f"docker-credential-{helper}"
    exe = shutil.which(name)
    if not exe:
        return None
    try:
        proc = subprocess.run([exe, "get"], input=host.encode(), capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        raise RegistryError(f"credential helper {name} for {host} did not answer within 30 s") from None
    except OSError as exc:
        raise RegistryError(f"cannot run credential helper {name}: {exc.strerror}") from None
    if proc.returncode != 0:
        return None
    try:
        doc = json.loads(proc.stdout)
    except ValueError:  # not JSON, or not UTF-8
        doc = None
    user = doc.get("Username") if isinstance(doc, dict) else None
    secret = doc.get("Secret") if isinstance(doc, dict) else None
    if not isinstance(user, str) or not isinstance(secret, str):
        # Never echo the answer: it may hold the secret.
        raise RegistryError(
            f'credential helper {name} answered for {host} without a {{"Username": ..., "Secret": ...}} '
            "object of strings; fix the helper or its entry in the docker config"
        )
    return Credentials(user, secret)


def resolve_credentials(
    host: str,
    *,
    username_env: str | None = None,
    password_env: str | None = None,
    environ: Mapping[str, str] | None = None,
    docker_config: Path | None = None,
) -> Credentials | None:
    """Env vars named by the spec first, then the docker config (auths, credHelpers, credsStore)."""
    env = os.environ if environ is None else environ
    if username_env or password_env:
        missing = [n for n in (username_env, password_env) if not n or n not in env]
        if missing:
            raise RegistryError(
                f"registry {host}: credential variable {missing[0] or '(username_env/password_env)'} is not set"
            )
        return Credentials(env[username_env], env[password_env])  # type: ignore[index]
    cfg = _docker_config(docker_config)
    keys = [host, f"https://{host}", f"http://{host}"]
    if is_docker_hub(host):
        keys.append("https://index.docker.io/v1/")
    helpers = cfg.get("credHelpers")
    if isinstance(helpers, dict) and host in helpers:
        return _helper(str(helpers[host]), host)
    auths = cfg.get("auths")
    for key in keys:
        entry = auths.get(key) if isinstance(auths, dict) else None
        if isinstance(entry, dict):
            if entry.get("auth"):
                user, _, pw = base64.b64decode(str(entry["auth"])).decode().partition(":")
                return Credentials(user, pw)
            if entry.get("username"):
                return Credentials(str(entry["username"]), str(entry.get("password", "")))
    store = cfg.get("credsStore")
    return _helper(str(store), host) if store else None
