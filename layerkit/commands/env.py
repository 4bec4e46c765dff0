"""`layerkit env register|list|show|diff`: environment versions, stored in the registry
(OCI artifacts under `<repository>-envs/<name>`) with a local index as a read cache."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit.commands import add_lock_arguments, lock_of, out, warn
from layerkit.errors import EXIT_OK

if TYPE_CHECKING:
    from layerkit.envs.models import EnvRecord
    from layerkit.envs.ops import Listing

REGISTER_SCHEMA = "layerkit.env-register/1"


def _registry_options(p: argparse.ArgumentParser, with_spec: bool) -> None:
    p.add_argument(
        "--registry",
        help="registry HOST[:PORT][/PATH] (default: the spec's registry.address"
        + (", else $LAYERKIT_REGISTRY)" if with_spec else ")"),
    )
    if with_spec:
        p.add_argument(
            "--spec",
            type=Path,
            help="read the registry address, repository and credential variable names from this spec",
        )
    p.add_argument("--json", action="store_true", help="JSON on stdout")


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="env_command", required=True, metavar="{register,list,show,diff}")
    c = sub.add_parser("register", help="record the spec's environment as a new version of its name")
    c.add_argument("spec", type=Path, help="layerkit.yaml (its lock beside it: <stem>.conda-lock.yml)")
    add_lock_arguments(c, platform_default="the spec's first")
    _registry_options(c, with_spec=False)
    c = sub.add_parser("list", help="registered environment names, or the versions of one")
    c.add_argument("name", nargs="?", help="an environment name (default: all, from the registry's catalog)")
    _registry_options(c, with_spec=True)
    c = sub.add_parser("show", help="one version's record (default: the latest)")
    c.add_argument("ref", metavar="NAME[@VERSION]")
    c.add_argument(
        "--sbom",
        action="store_true",
        help="print its image's SBOM (CycloneDX JSON, attached by `layerkit build`)",
    )
    _registry_options(c, with_spec=True)
    c = sub.add_parser("diff", help="what changed between two versions (exit 0: a diff is information)")
    c.add_argument("old", metavar="NAME@V1")
    c.add_argument("new", metavar="NAME@V2")
    _registry_options(c, with_spec=True)


def _dumps(doc: object) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _show_text(r: EnvRecord) -> str:
    b = r.base
    base = f"Dockerfile sha256:{b.dockerfile_sha256}" if b.dockerfile_sha256 else f"{b.image}"
    if b.digest:
        base += f"@{b.digest}"
    lines = [
        f"name: {r.name or '(anonymous)'}",
        f"version: {r.version}",
        f"hash: {r.hash}",
        f"image: {r.image}",
        *(f"digest {plat}: {d}" for plat, d in sorted(r.digests.items())),
        *([f"index: {r.index}" + (f"@{r.index_digest}" if r.index_digest else "")] if r.index else []),
        f"registered: {r.registered_at} (layerkit {r.layerkit_version})",
    ]
    if r.description:
        lines.append(f"description: {r.description}")
    lines.append(f"base: {base}" + (f" (flavour {b.flavour})" if b.flavour else ""))
    if b.runtime:
        lines.append(f"runtime: {b.runtime}" + (f"@{b.runtime_digest}" if b.runtime_digest else ""))
    if r.apt:
        lines.append("apt: " + " ".join(r.apt))
    lines += [f"env: {k}={v}" for k, v in sorted(r.env.items())]
    if r.lock:
        lines.append(f"lock: {r.lock.path}")
    else:
        lines.append("lock: none (requested: " + ", ".join(r.requested) + ")")
    for plat, pkgs in sorted(r.platforms.items()):
        lines.append(f"{plat}: {len(pkgs)} packages")
        lines += [
            f"  {p.name} {p.version} {p.build}".rstrip() + (" (pip)" if p.manager == "pip" else "")
            for p in pkgs
        ]
    lines += [f"source: {s.path}" + (f" sha256:{s.sha256[:12]}" if s.sha256 else "") for s in r.sources]
    return "\n".join(lines) + "\n"


def _list_text(listing: Listing, one: bool) -> str:
    if not one:
        return "".join(f"{e.name}  {' '.join(e.versions)}\n" for e in listing.environments)
    rows = []
    for e in listing.environments:
        for r in e.records:
            rows.append(
                f"{r.version}  {r.hash[:12]}  {r.registered_at}  {r.description or ''}".rstrip() + "\n"
            )
    return "".join(rows)


def run(args: argparse.Namespace) -> int:
    from layerkit import api

    def on_warning(message: str) -> None:
        warn(args, (message,))

    if args.env_command == "register":
        lock, auto = lock_of(args)
        done = api.env_register(
            args.spec, lock, args.platform, auto, registry=args.registry, on_warning=on_warning
        )
        r = done.record
        if args.json:
            doc = {"schema": REGISTER_SCHEMA, "name": r.name, "version": r.version, "ref": r.ref,
                   "hash": r.hash, "image": r.image, "reused": done.reused, "store": done.store}  # fmt: skip
            out(_dumps(doc))
        else:
            if done.reused:
                message = f"{r.ref} is this environment already (hash {r.hash[:12]}): nothing registered"
            else:
                message = f"registered {r.ref} (hash {r.hash[:12]}) in {done.store}"
            warn(args, (message,))
            out(f"{r.ref}\n")
        return EXIT_OK
    if args.env_command == "list":
        listing = api.env_list(args.name, registry=args.registry, spec=args.spec, on_warning=on_warning)
        out(_dumps(listing.to_json()) if args.json else _list_text(listing, args.name is not None))
        return EXIT_OK
    if args.env_command == "show" and args.sbom:
        sbom = api.env_sbom(args.ref, registry=args.registry, spec=args.spec, on_warning=on_warning)
        from layerkit.build.registry import json_object

        # A registry's blob: checked again here, as it is parsed (exit 3, one line).
        out(_dumps(json_object(sbom, "the SBOM the registry holds")))
        return EXIT_OK
    if args.env_command == "show":
        record = api.env_show(args.ref, registry=args.registry, spec=args.spec, on_warning=on_warning)
        out(_dumps(record.to_json()) if args.json else _show_text(record))
        return EXIT_OK
    from layerkit.envs.diff import format_text

    d = api.env_diff(args.old, args.new, registry=args.registry, spec=args.spec, on_warning=on_warning)
    out(_dumps(d.to_json()) if args.json else format_text(d))
    return EXIT_OK
