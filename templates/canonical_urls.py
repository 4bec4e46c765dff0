"""Map the URLs the installers recorded in the env prefix from the site's mirrors back to the
canonical ones. Shipped by layerkit into the env stage's build context only when the spec has
mirrors, with the table (canonical-urls.json: spec/mirrortable.py), and run by the installer
venv's Python after every install, before the cleanup:

  canonical_urls.py --prefix /opt/env --table canonical-urls.json [--requirements FILE]

The hash is taken from a render without mirrors (hashing/canonical.py), so two sites with
other mirrors build under one hash; this makes them build one image too. conda-meta records
name each package's `url` and `channel`: mapped through the table. A locked pip step records
each wheel's URL in its direct_url.json (--requirements: the locked file): dropped.
Standard library only.
"""

import argparse
import glob
import json
import os
import re

# A JSON string literal (conda-meta records are JSON; rattler writes URLs unescaped).
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_HASH_OPTION = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def unmirror(url, table):
    """`url` under its canonical prefix when a mirror prefix of `table` starts it."""
    for prefix, canonical in table:
        if url == prefix or url.startswith(prefix + "/"):
            return canonical + url[len(prefix) :]
    return url


def canonical_records(text, table):
    """A conda-meta record with every string that names a mirror URL (`url`, `channel`)
    under the canonical prefix instead; the rest of the text byte for byte, so the record is
    the one a site without mirrors writes."""
    return _JSON_STRING.sub(lambda m: '"' + unmirror(m.group(1), table) + '"', text)


def _canonical_conda_meta(prefix, table):
    for path in sorted(glob.glob(os.path.join(prefix, "conda-meta", "*.json"))):
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            text = fh.read()
        done = canonical_records(text, table)
        if done != text:
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as fh:
                fh.write(done)


def locked_hashes(requirements):
    """The sha256 of each wheel or sdist a locked requirements file names."""
    with open(requirements, encoding="utf-8") as fh:
        return set(_HASH_OPTION.findall(fh.read()))


def _direct_url_hash(path):
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh).get("archive_info") or {}
    except (OSError, ValueError):
        return None
    sha = (info.get("hashes") or {}).get("sha256")
    if sha is None and str(info.get("hash", "")).startswith("sha256="):
        sha = info["hash"][len("sha256=") :]
    return sha


def drop_locked_direct_urls(prefix, hashes):
    """pip records the URL of a `name @ URL` requirement in the dist-info's direct_url.json
    (PEP 610), and a locked requirement is one: the site's mirror URL, not the index a site
    without one uses, and no table maps a mirror's file URLs (they are not under its index
    URL). The lock pins the file by its sha256, so the record is dropped with its RECORD line:
    pip then lists the package as installed from an index (`name==version`), which it was."""
    dropped = 0
    for path in sorted(
        glob.glob(os.path.join(prefix, "lib", "python*", "site-packages", "*.dist-info", "direct_url.json"))
    ):
        if _direct_url_hash(path) not in hashes:
            continue  # a URL the user wrote: it is in the spec, the same on every site
        dist_info = os.path.dirname(path)
        record = os.path.join(dist_info, "RECORD")
        entry = os.path.basename(dist_info) + "/direct_url.json,"
        if os.path.isfile(record):
            with open(record, encoding="utf-8", newline="") as fh:
                lines = fh.readlines()
            with open(record, "w", encoding="utf-8", newline="") as fh:
                fh.writelines(ln for ln in lines if not ln.startswith(entry))
        os.remove(path)
        dropped += 1
    return dropped


def canonical_urls(prefix, table_file, requirements=None):
    """After every install: the mirror URLs the installers recorded in the prefix mapped back
    to the canonical ones (the table: spec/mirrortable.py, written by the render), so a site's
    mirror changes the image no more than it changes the hash."""
    if table_file:  # no table: no mirrors, only the locked wheels' direct_url.json to drop
        with open(table_file, encoding="utf-8") as fh:
            table = [tuple(pair) for pair in json.load(fh)["prefixes"]]
        _canonical_conda_meta(prefix, table)
    if requirements:
        drop_locked_direct_urls(prefix, locked_hashes(requirements))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--table")
    ap.add_argument("--requirements")  # the locked pip file whose wheels' direct_url.json to drop
    args = ap.parse_args()
    canonical_urls(args.prefix, args.table, args.requirements)


if __name__ == "__main__":
    main()
