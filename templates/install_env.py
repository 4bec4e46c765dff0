"""Create a conda environment with py-rattler (no conda binary needed). Shipped by layerkit
into the build context of the env stage.

  install_env.py --prefix /opt/env --lock conda-linux-64.lock --platform linux-64
  install_env.py --prefix /opt/env --spec environment.yml --platform linux-64
  --cache-dir DIR: the package cache (a BuildKit cache mount: kept across builds, not in the image)
"""

import argparse
import asyncio
import json
import os
import sys


def _explicit_urls(path):
    urls = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith(("#", "@")):
                urls.append(line.split("#", 1)[0])
    return urls


async def _records_for(urls, platform):
    import rattler

    by_channel = {}
    for url in urls:
        base, subdir, _ = url.rsplit("/", 2)
        by_channel.setdefault(base, set()).add(url.rsplit("/", 1)[1])
    records = {}
    gateway = rattler.Gateway()
    for base, files in sorted(by_channel.items()):
        names = sorted({f.rsplit("-", 2)[0] for f in files})
        found = await gateway.query([rattler.Channel(base)], [platform, "noarch"], names, recursive=False)
        for group in found:
            for rec in group:
                records.setdefault(str(rec.url), rec)
    missing = [u for u in urls if u not in records]
    if missing:
        raise SystemExit(f"install_env: {len(missing)} locked packages are not in their channels, e.g. {missing[0]}")
    return [records[u] for u in urls]


async def _solve(spec_path, platform):
    import rattler

    with open(spec_path, encoding="utf-8") as fh:
        doc = json.load(fh)  # layerkit writes environment.yml as JSON, which is YAML
    channels = [rattler.Channel(c) for c in doc["channels"]]
    # Read as layerkit validated them and as its lock solver reads them: strict=False accepts
    # what conda accepts (`numpy 1.2 py3*`); rattler.solve would parse strings strictly.
    specs = [rattler.MatchSpec(s, strict=False) for s in doc["dependencies"]]
    return await rattler.solve(
        channels, specs, platforms=[platform, "noarch"],
        # $CONDA_OVERRIDE_CUDA (set by layerkit for GPU environments; no driver at build time)
        # and the other CONDA_OVERRIDE_* win over detection, as in conda and micromamba.
        virtual_packages=rattler.VirtualPackage.detect(rattler.VirtualPackageOverrides.from_env()),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--platform", required=True)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--lock")
    group.add_argument("--spec")
    ap.add_argument("--cache-dir")
    args = ap.parse_args()
    import rattler

    if args.lock:
        records = asyncio.run(_records_for(_explicit_urls(args.lock), args.platform))
    else:
        records = asyncio.run(_solve(args.spec, args.platform))
    cache = {"cache_dir": args.cache_dir} if args.cache_dir else {}
    asyncio.run(rattler.install(records, target_prefix=args.prefix, show_progress=False, **cache))
    print(f"install_env: installed {len(records)} packages into {args.prefix}", flush=True)


if __name__ == "__main__":
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        if not isinstance(exc.code, int) and exc.code:
            print(exc.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # py-rattler can crash at interpreter exit
