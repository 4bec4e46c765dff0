"""Create a conda environment with py-rattler (no conda binary needed). Shipped by layerkit
into the build context of the env stage.

  install_env.py --prefix /opt/env --lock conda-linux-64.lock --platform linux-64
  install_env.py --prefix /opt/env --spec environment.yml --platform linux-64
  --cache-dir DIR: the package cache (a BuildKit cache mount: kept across builds, not in the image)

Channel URLs may use environment variables (`https://host/t/${CONDA_TOKEN}/stable`, or
$CONDA_TOKEN), kept unexpanded in the lock and the context. Each one's value is read here from
the BuildKit secret of the same name (`RUN --mount=type=secret,id=CONDA_TOKEN` puts it at
/run/secrets/CONDA_TOKEN, for this RUN only), and written nowhere: repodata is cached in a
folder removed before exit, the prefix's conda-meta records get the `${NAME}` back, and
messages show `${NAME}` instead of the value.

A locked install is verified against the lock: each package's record takes the lock's sha256
(or md5, where that is all the lock has) in place of the channel's, and rattler checks the
archive against it when it downloads it and when it reuses it from the cache, before linking.
So a channel that serves another file under a locked name fails the build. An unlocked
install (--spec) has no lock to check against: only the channel's own repodata checksums.

Cross-install: this runs on the builder's platform (the env stage is `FROM --platform=
$BUILDPLATFORM`) and installs --platform's packages, e.g. linux-aarch64 ones on an amd64
builder: linking a conda package copies files and patches its prefix, which runs nothing of
it. What would run the target's code is not done: post-link scripts (py-rattler runs none,
for any platform; the packages that have one are listed on stderr) and, for pip, building an
sdist. So a locked pip section for another platform is installed from wheels only (--pip):
this venv's pip downloads the locked wheels for the target's tags and pypa's `installer`
unpacks them into the prefix.
"""

import argparse
import asyncio
import glob
import json
import os
import re
import shutil
import sys
import tempfile

_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
SECRETS = {}  # variable name -> value, filled from the secret files
SECRETS_DIR = "/run/secrets"


def _secret(name):
    if name not in SECRETS:
        path = os.path.join(SECRETS_DIR, name)
        try:
            with open(path, encoding="utf-8") as fh:
                value = fh.read().strip()
        except OSError:
            value = ""
        if not value:
            raise SystemExit(
                f"install_env: a channel URL uses ${{{name}}}, but the build has no secret {name} "
                f"(`layerkit build` passes ${name} from its environment; with docker build: "
                f"--secret id={name},env={name})"
            )
        SECRETS[name] = value
    return SECRETS[name]


def expand(url):
    """A channel or package URL with its ${NAME}/$NAME replaced by the secrets' values."""
    return _VAR.sub(lambda m: _secret(m.group(1) or m.group(2)), url)


def mask(text):
    for name, value in sorted(SECRETS.items(), key=lambda kv: -len(kv[1])):
        text = text.replace(value, "${" + name + "}")
    return text


def _mask_prefix(prefix):
    """Put `${NAME}` back where rattler recorded an expanded URL (conda-meta/*.json)."""
    for path in glob.glob(os.path.join(prefix, "conda-meta", "*")):
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            text = fh.read()
        masked = mask(text)
        if masked != text:
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as fh:
                fh.write(masked)


# The checksum after a URL's `#`: conda's explicit forms (`sha256:`/`sha256=` optional).
_CHECKSUM = re.compile(r"(?:sha256[:=])?([0-9a-f]{64})|([0-9a-f]{32})")
# rattler 0.28's words for an archive that is not the one its record names.
_MISMATCH = re.compile(r"hash mismatch when extracting (\S+) to .*?: expected ([0-9a-f]+), got ([0-9a-f]+)")


def _explicit_entries(path):
    """(url, sha256, md5) of each locked package, its checksum as the lock gives it."""
    entries = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith(("#", "@")):
                continue
            url, _, frag = line.partition("#")
            m = _CHECKSUM.fullmatch(frag.strip())
            if m is None:  # layerkit renders none without one: a hand-edited file
                raise SystemExit(
                    f"install_env: the lock gives no sha256 or md5 for {url.rsplit('/', 1)[-1]}, so it "
                    "cannot be verified; run `layerkit lock` again"
                )
            entries.append((url, m.group(1), m.group(2)))
    return entries


def _pin_checksums(record, sha256, md5):
    """The lock's checksums replace the channel's: rattler verifies the archive against them."""
    record.sha256 = bytes.fromhex(sha256) if sha256 else None
    record.md5 = bytes.fromhex(md5) if md5 else None


def mismatch_message(text):
    """One line naming the package, the lock's digest and the served one; None: not a mismatch."""
    m = _MISMATCH.search(text)
    if m is None:
        return None
    url, want, got = m.groups()
    kind = "sha256" if len(want) == 64 else "md5"
    return (
        f"install_env: {url.rsplit('/', 1)[-1]} is not the locked package: expected {kind} {want}, "
        f"got {got} from {url} (the channel serves another file under this name; relock if that is intended)"
    )


def _gateway(repodata_cache):
    import rattler

    return rattler.Gateway(cache_dir=repodata_cache) if repodata_cache else rattler.Gateway()


async def _records_for(entries, platform, repodata_cache=None):
    """The channels' records of the locked URLs, each with the lock's checksums."""
    import rattler

    urls = [expand(u) for u, _, _ in entries]
    by_channel = {}
    for url in urls:
        base, subdir, _ = url.rsplit("/", 2)
        by_channel.setdefault(base, set()).add(url.rsplit("/", 1)[1])
    records = {}
    gateway = _gateway(repodata_cache)
    for base, files in sorted(by_channel.items()):
        names = sorted({f.rsplit("-", 2)[0] for f in files})
        found = await gateway.query([rattler.Channel(base)], [platform, "noarch"], names, recursive=False)
        for group in found:
            for rec in group:
                records.setdefault(str(rec.url), rec)
    missing = [u for u in urls if u not in records]
    if missing:
        raise SystemExit(f"install_env: {len(missing)} locked packages are not in their channels, e.g. {missing[0]}")
    for url, (_, sha256, md5) in zip(urls, entries):
        _pin_checksums(records[url], sha256, md5)
    return [records[u] for u in urls]


async def _solve(spec_path, platform, repodata_cache=None):
    import rattler

    with open(spec_path, encoding="utf-8") as fh:
        doc = json.load(fh)  # layerkit writes environment.yml as JSON, which is YAML
    channels = [rattler.Channel(expand(c)) for c in doc["channels"]]
    # Read as layerkit validated them and as its lock solver reads them: strict=False accepts
    # what conda accepts (`numpy 1.2 py3*`); rattler.solve would parse strings strictly.
    specs = [rattler.MatchSpec(s, strict=False) for s in doc["dependencies"]]
    return await rattler.solve(
        channels, specs, platforms=[platform, "noarch"], gateway=_gateway(repodata_cache),
        # $CONDA_OVERRIDE_CUDA (set by layerkit for GPU environments; no driver at build time)
        # and the other CONDA_OVERRIDE_* win over detection, as in conda and micromamba.
        virtual_packages=_virtual_packages(platform),
    )


def _virtual_packages(platform):
    """This builder's virtual packages, but a foreign target's __archspec is its own arch."""
    import rattler

    found = rattler.VirtualPackage.detect(rattler.VirtualPackageOverrides.from_env())
    if not foreign(platform):
        return found
    generic = [v.into_generic() for v in found]
    kept = [g for g in generic if g.name.normalized != "__archspec"]
    arch = ARCH.get(platform, platform.rpartition("-")[2])
    name, version = rattler.PackageName("__archspec"), rattler.Version("1")
    return [*kept, rattler.GenericVirtualPackage(name, version, rattler.BuildString(arch))]


# conda's platform -> the machine name in manylinux wheel tags (and conda's __archspec).
ARCH = {"linux-64": "x86_64", "linux-aarch64": "aarch64", "linux-ppc64le": "ppc64le"}
# manylinux's first glibc for each machine, and PEP 600's aliases of the older names.
_FIRST_GLIBC = {"x86_64": 5, "aarch64": 17, "ppc64le": 17}
_LEGACY = (("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5))


def foreign(platform):
    """The target is not this builder's platform: nothing of the target may run here."""
    import platform as host

    return ARCH.get(platform) != host.machine()


def manylinux_tags(platform, glibc):
    """pip download's --platform values: every manylinux tag a base with `glibc` runs, newest
    first (pip expands none of the manylinux_2_N names itself)."""
    arch = ARCH[platform]
    major, minor = (int(x) for x in glibc.split(".")[:2])
    first = _FIRST_GLIBC[arch]
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, first - 1, -1)]
    return tags + [f"{name}_{arch}" for name, m in _LEGACY if first <= m <= minor]


def not_run_post_links(prefix, names):
    """The installed packages with a post-link script (conda's `bin/.<name>-post-link.sh`)."""
    return sorted(n for n in set(names) if os.path.isfile(os.path.join(prefix, "bin", f".{n}-post-link.sh")))


def post_link_message(names, platform, is_foreign):
    why = (
        f"they would run {platform} code on this builder"
        if is_foreign
        else "py-rattler runs no link scripts"
    )
    return (
        f"install_env: warning: the post-link scripts of {', '.join(names)} were not run ({why}); "
        "the packages are linked, but what a script would add or change is missing"
    )


def cross_pip(prefix, requirements, platform, python, glibc, index_url=None):
    """The locked wheels for `platform`, downloaded by this venv's pip for the target's tags
    (never built: an sdist would run code) and unpacked into `prefix` by pypa's installer."""
    import subprocess

    abi = "cp" + python.replace(".", "")
    tags = manylinux_tags(platform, glibc)
    wheels = tempfile.mkdtemp(prefix="lk-wheels-")
    try:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-cache-dir", "--disable-pip-version-check",
            "--only-binary=:all:", "--no-deps", "--require-hashes", "--dest", wheels,
            "--python-version", python, "--implementation", "cp", "--abi", abi,
            *(x for t in tags for x in ("--platform", t)),
            *(("--index-url", index_url) if index_url else ()), "-r", requirements,
        ]  # fmt: skip
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout)
            # pip's words for a locked wheel of other tags, and for a requirement with none.
            missing = re.search(
                r"(\S+\.whl) is not a supported wheel|No matching distribution found for (\S+)", done.stdout
            )
            what = (missing.group(1) or missing.group(2)) if missing else "a locked pip package"
            raise SystemExit(
                f"install_env: no wheel of {what} for {platform} (CPython {python}, manylinux up to "
                f"glibc {glibc}), or its download failed: a pip package for another platform is "
                "installed from wheels only, never built from an sdist"
            )
        names = sorted(n for n in os.listdir(wheels) if n.endswith(".whl"))
        for name in names:
            install_wheel(os.path.join(wheels, name), prefix, python)
    finally:
        shutil.rmtree(wheels, ignore_errors=True)
    print(f"install_env: installed {len(names)} wheels for {platform} into {prefix}", flush=True)


def install_wheel(path, prefix, python):
    """One wheel into the prefix, laid out as pip does for the prefix's own Python."""
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    site = f"{prefix}/lib/python{python}/site-packages"
    with WheelFile.open(path) as source:
        scheme = {
            "purelib": site, "platlib": site, "scripts": f"{prefix}/bin", "data": prefix,
            "headers": f"{prefix}/include/python{python}/{source.distribution}",
        }  # fmt: skip
        # Scripts start `#!/opt/env/bin/python`; no bytecode (the env stage drops __pycache__).
        dest = SchemeDictionaryDestination(scheme, interpreter=f"{prefix}/bin/python", script_kind="posix")
        install(source, dest, additional_metadata={"INSTALLER": b"layerkit\n"})


def main():
    global SECRETS_DIR
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--platform", required=True)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--lock")
    group.add_argument("--spec")
    group.add_argument("--pip")  # a locked requirements file: its wheels for --platform (cross_pip)
    ap.add_argument("--python")  # with --pip: the prefix's Python, X.Y
    ap.add_argument("--glibc")  # with --pip: the newest manylinux glibc the base runs
    ap.add_argument("--index-url")
    ap.add_argument("--cache-dir")
    ap.add_argument("--secrets-dir", default=SECRETS_DIR)  # where BuildKit mounts the secrets
    args = ap.parse_args()
    SECRETS_DIR = args.secrets_dir
    if args.pip:
        if not (args.python and args.glibc):
            raise SystemExit("install_env: --pip needs --python and --glibc")
        cross_pip(args.prefix, args.pip, args.platform, args.python, args.glibc, args.index_url)
        return
    import rattler

    # Repodata is cached only for this run: it records the URLs it came from (credentials too),
    # and when it was fetched, so a cache left in the layer would differ from build to build.
    repodata_cache = tempfile.mkdtemp(prefix="lk-repodata-")
    try:
        if args.lock:
            records = asyncio.run(_records_for(_explicit_entries(args.lock), args.platform, repodata_cache))
        else:
            records = asyncio.run(_solve(args.spec, args.platform, repodata_cache))
        cache = {"cache_dir": args.cache_dir} if args.cache_dir else {}
        # platform: the target's, not this builder's (py-rattler's default). No link scripts:
        # py-rattler's default too, said here because a foreign target could not run them.
        asyncio.run(
            rattler.install(
                records, target_prefix=args.prefix, platform=rattler.Platform(args.platform),
                execute_link_scripts=False, show_progress=False, **cache,
            )
        )  # fmt: skip
    finally:
        if repodata_cache:
            shutil.rmtree(repodata_cache, ignore_errors=True)
        if SECRETS and os.path.isdir(args.prefix):
            _mask_prefix(args.prefix)
    skipped = not_run_post_links(args.prefix, [r.name.normalized for r in records])
    if skipped:
        print(post_link_message(skipped, args.platform, foreign(args.platform)), file=sys.stderr, flush=True)
    print(f"install_env: installed {len(records)} packages into {args.prefix}", flush=True)


if __name__ == "__main__":
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        if not isinstance(exc.code, int) and exc.code:
            print(mask(str(exc.code)), file=sys.stderr)
    except Exception as exc:  # rattler's messages name the URL: never print a secret
        code = 1
        text = mask(str(exc))
        print(mismatch_message(text) or f"install_env: {type(exc).__name__}: {text}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # py-rattler can crash at interpreter exit
