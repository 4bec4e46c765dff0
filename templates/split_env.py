"""Split an installed conda prefix into package-group folders, one image layer each. Shipped by
layerkit into the env stage, run at the end of the install RUN (layerkit/render/envlayers.py):

  split_env.py --prefix /opt/env GROUPS.json

GROUPS.json: {"groups": [{"folder": "/layerkit/groups/cuda", "packages": ["libcublas", ...]}]}.
Each group's files (its packages' conda-meta records name them) and the records themselves are
moved to the group's folder, at the same path relative to it as to the prefix; what no group
takes stays in the prefix. The runtime stage copies every folder and then the prefix onto
/opt/env, so it gets the same files as one copy of the whole prefix would give it:
- a move is a rename: contents, modes, owners and symlinks (never followed) are unchanged;
- folders are not moved, so the prefix keeps every one (empty or not) and, copied last, gives
  each its mode; a group's folders are made with the prefix's modes;
- a path under a symlinked folder stays (a real folder of that name in a group would replace
  the symlink); so does a path two packages name, once moved by the first;
- hard links between a group's files and the rest's become copies of the same content.
"""

import argparse
import json
import os
import stat
import sys


def _records(prefix):
    """package name -> (record file name, record) of the prefix's conda-meta."""
    meta = os.path.join(prefix, "conda-meta")
    out = {}
    for name in sorted(os.listdir(meta)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(meta, name), encoding="utf-8") as fh:
            record = json.load(fh)
        out[record["name"]] = (name, record)
    return out


def _paths(record):
    files = record.get("files")
    if files is None:
        files = [p["_path"] for p in record.get("paths_data", {}).get("paths", [])]
    return files


def _under_real_folders(prefix, rel):
    """True when no folder between the prefix and `rel` is a symlink."""
    parts = rel.split("/")[:-1]
    here = prefix
    for part in parts:
        here = os.path.join(here, part)
        if os.path.islink(here) or not os.path.isdir(here):
            return False
    return True


def _make_parents(prefix, folder, rel):
    """The folders above `rel` in the group's folder, each with the prefix folder's mode."""
    here_src, here_dst = prefix, folder
    for part in rel.split("/")[:-1]:
        here_src, here_dst = os.path.join(here_src, part), os.path.join(here_dst, part)
        if not os.path.isdir(here_dst):
            os.mkdir(here_dst)
            st = os.stat(here_src)
            os.chmod(here_dst, stat.S_IMODE(st.st_mode))
            os.chown(here_dst, st.st_uid, st.st_gid)


def move_package(prefix, folder, record_name, record):
    """Move one package's files and its record; returns how many paths moved."""
    moved = 0
    for rel in sorted({*_paths(record), f"conda-meta/{record_name}"}):
        rel = rel.strip("/")
        src = os.path.join(prefix, rel)
        if not rel or ".." in rel.split("/") or not os.path.lexists(src):
            continue  # removed since (__pycache__) or not the prefix's
        if os.path.isdir(src) and not os.path.islink(src):
            continue  # folders stay: the prefix keeps them all
        if not _under_real_folders(prefix, rel):
            continue
        _make_parents(prefix, folder, rel)
        os.rename(src, os.path.join(folder, rel))
        moved += 1
    return moved


def split(prefix, groups):
    records = _records(prefix)
    st = os.stat(prefix)
    for group in groups:
        folder = group["folder"]
        os.makedirs(folder)
        os.chmod(folder, stat.S_IMODE(st.st_mode))
        os.chown(folder, st.st_uid, st.st_gid)
        moved = 0
        for name in group["packages"]:
            if name in records:
                moved += move_package(prefix, folder, *records[name])
        print(f"split_env: {moved} paths of {len(group['packages'])} packages -> {folder}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True)
    ap.add_argument("groups")
    args = ap.parse_args()
    with open(args.groups, encoding="utf-8") as fh:
        groups = json.load(fh)["groups"]
    split(args.prefix, groups)


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, KeyError) as exc:
        sys.exit(f"split_env: {type(exc).__name__}: {exc}")
