"""A locked /opt/env ships as one layer per big package family and one for the rest (issue 18
§2): the grouping is a function of the lock's names, and templates/split_env.py moves each
group's files so that the layers, laid over each other, are the prefix a single copy gives."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
from pathlib import Path
from types import ModuleType

import pytest

from layerkit import api
from layerkit.lock.model import Lock, LockedPackage
from layerkit.render import envlayers
from layerkit.resources import data_dir
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import Checked, check

SPEC = "name: e\nconda: {channels: [conda-forge], dependencies: [numpy]}\n"


def checked(text: str = SPEC) -> Checked:
    return check(resolve(load_text(text, "spec.yaml")))


def pkg(name: str, version: str = "1.0", platform: str = "linux-64") -> LockedPackage:
    return LockedPackage(
        manager="conda", platform=platform, name=name, version=version, build="h0",
        url=f"https://conda.anaconda.org/conda-forge/{platform}/{name}-{version}-h0.conda", sha256="0" * 64,
    )  # fmt: skip


STACK = ("numpy", "python", "pytorch", "libcublas", "cuda-cudart", "libcudnn9", "mkl", "nccl", "zlib")


def lock(*names: str, **versions: str) -> Lock:
    return Lock(source="x", packages=tuple(pkg(n, versions.get(n.replace("-", "_"), "1.0")) for n in names))


def runtime(dockerfile: str) -> str:
    return dockerfile.split(" AS runtime\n", 1)[1]


def test_groups_follow_the_catalog_order_and_the_rest_is_no_group() -> None:
    got = envlayers.groups(lock(*STACK), "linux-64")
    assert [(g.name, g.packages) for g in got] == [
        ("cuda", ("cuda-cudart", "libcublas")),
        ("cudnn", ("libcudnn9",)),
        ("nccl", ("nccl",)),
        ("mkl", ("mkl",)),
        ("torch", ("pytorch",)),
    ]
    assert envlayers.groups(lock("numpy", "python"), "linux-64") == ()  # all rest: one layer
    assert envlayers.groups(None, "linux-64") == ()
    assert envlayers.groups(lock(*STACK), "linux-64", enabled=False) == ()
    # Another platform's packages do not count.
    other = Lock(source="x", packages=(pkg("numpy"), pkg("libcublas", platform="linux-aarch64")))
    assert envlayers.groups(other, "linux-64") == ()


def test_the_grouping_depends_on_names_only_not_on_order_or_versions() -> None:
    a = envlayers.groups(lock(*STACK), "linux-64")
    assert envlayers.groups(lock(*reversed(STACK)), "linux-64") == a
    assert envlayers.groups(lock(*STACK, numpy="2.0", libcublas="12.9"), "linux-64") == a


def test_a_rest_package_update_leaves_every_group_copy_as_it_was() -> None:
    before = api.render(checked(), lock(*STACK), auto_lock=False)
    after = api.render(checked(), lock(*STACK, numpy="2.0"), auto_lock=False)
    lines = [ln for ln in runtime(before.dockerfile).splitlines() if ln.startswith("COPY --link --from=env")]
    assert lines == [
        "COPY --link --from=env /layerkit/groups/cuda /opt/env",
        "COPY --link --from=env /layerkit/groups/cudnn /opt/env",
        "COPY --link --from=env /layerkit/groups/nccl /opt/env",
        "COPY --link --from=env /layerkit/groups/mkl /opt/env",
        "COPY --link --from=env /layerkit/groups/torch /opt/env",
        "COPY --link --from=env /opt/env /opt/env",
    ]
    assert runtime(after.dockerfile).count("COPY --link --from=env") == 6
    assert dict(before.files)["env-layers.json"] == dict(after.files)["env-layers.json"]
    # The split is part of what the env stage builds: in its hash and the environment's.
    assert "python3 /layerkit/split_env.py --prefix /opt/env /layerkit/env-layers.json" in before.dockerfile
    single = api.render(
        checked(SPEC.replace("[numpy]", "[numpy], layers: false")), lock(*STACK), auto_lock=False
    )
    assert before.hash.stages["env"] != single.hash.stages["env"] and before.hash.hash != single.hash.hash


def test_unlocked_or_opted_out_environments_keep_one_env_layer() -> None:
    for r in (
        api.render(checked(), auto_lock=False),
        api.render(checked(SPEC.replace("[numpy]", "[numpy], layers: false")), lock(*STACK), auto_lock=False),
        api.render(checked(), lock("numpy", "python"), auto_lock=False),
    ):
        assert runtime(r.dockerfile).count("COPY --link --from=env") == 1
        assert "split_env" not in r.dockerfile and "env-layers.json" not in dict(r.files)


def test_the_catalog_families_are_valid_and_distinct() -> None:
    fams = envlayers.families()
    assert fams and len({f.name for f in fams}) == len(fams)
    assert fams[0].name == "cuda"  # the biggest, rarest to change: the lowest layer


# --- templates/split_env.py on a real prefix -------------------------------------------------


def split_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("split_env", data_dir("templates") / "split_env.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(
    prefix: Path, name: str, version: str, files: dict[str, bytes], links: dict[str, str] | None = None
) -> None:
    links = links or {}
    for rel, data in files.items():
        path = prefix / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o755 if rel.startswith("bin/") else 0o644)
    for rel, target in links.items():
        (prefix / rel).parent.mkdir(parents=True, exist_ok=True)
        (prefix / rel).symlink_to(target)
    meta = prefix / "conda-meta" / f"{name}-{version}-h0.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    paths = [{"_path": p, "path_type": "hardlink"} for p in [*files, *links]]
    # rattler writes `paths_data`; conda and micromamba `files` (the script reads either).
    doc = {"name": name, "version": version, "paths_data": {"paths": paths, "paths_version": 1}}
    if name == "python":
        doc = {"name": name, "version": version, "files": sorted([*files, *links, "lib/gone.pyc"])}
    meta.write_text(json.dumps(doc))


def make_prefix(root: Path, numpy: str = "1.0") -> Path:
    prefix = root / "opt" / "env"
    _record(
        prefix, "libcublas", "12.1",
        {"lib/libcublas.so.12": os.urandom(4096), "include/cublas.h": b"/* h */\n"},
        {"lib/libcublas.so": "libcublas.so.12"},
    )  # fmt: skip
    _record(prefix, "pytorch", "2.3", {"lib/python3.11/site-packages/torch/__init__.py": b"# torch\n"})
    _record(prefix, "numpy", numpy, {"lib/python3.11/site-packages/numpy/__init__.py": numpy.encode()})
    _record(prefix, "python", "3.11", {"bin/python3.11": b"#!fake\n"}, {"bin/python": "python3.11"})
    # A package path under a symlinked folder, and a file no record owns (pip's, a cache).
    (prefix / "lib64").symlink_to("lib")
    _record(prefix, "cuda-cudart", "12.1", {"lib64/libcudart.so": b"cudart"})
    (prefix / "lib/python3.11/site-packages/piponly.py").write_bytes(b"pip\n")
    (prefix / "share" / "empty").mkdir(parents=True)
    (prefix / "share").chmod(0o750)
    # Hard links: within the group (stays one inode) and across (becomes two copies).
    os.link(prefix / "include/cublas.h", prefix / "include/cublas_v2.h")
    meta = prefix / "conda-meta/libcublas-12.1-h0.json"
    doc = json.loads(meta.read_text())
    doc["paths_data"]["paths"].append({"_path": "include/cublas_v2.h"})
    meta.write_text(json.dumps(doc))
    return prefix


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """path -> (kind, mode, content or link target) of everything under root."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), p.read_bytes())
    return out


def layered(prefix: Path, folders: list[Path]) -> dict[str, tuple[object, ...]]:
    """What COPY of each folder, then of the prefix, onto one path gives: later layers win."""
    out: dict[str, tuple[object, ...]] = {}
    for layer in [*folders, prefix]:
        out.update(tree(layer))
    return out


GROUPS = [("cuda", ["cuda-cudart", "libcublas"]), ("torch", ["pytorch"])]


def split(root: Path, prefix: Path) -> list[Path]:
    folders = [root / "groups" / name for name, _ in GROUPS]
    groups = [{"folder": str(f), "packages": names} for f, (_, names) in zip(folders, GROUPS, strict=True)]
    split_module().split(str(prefix), groups)
    return folders


def test_the_layers_laid_over_each_other_are_the_prefix(tmp_path: Path) -> None:
    prefix = make_prefix(tmp_path)
    before = tree(prefix)
    folders = split(tmp_path, prefix)
    assert layered(prefix, folders) == before
    cuda, torch = (tree(f) for f in folders)
    assert {
        "lib/libcublas.so.12",
        "lib/libcublas.so",
        "include/cublas.h",
        "conda-meta/libcublas-12.1-h0.json",
    } <= set(cuda)
    assert cuda["lib/libcublas.so"] == ("link", "libcublas.so.12")  # moved as a link, not followed
    assert (
        os.stat(folders[0] / "include/cublas.h").st_ino == os.stat(folders[0] / "include/cublas_v2.h").st_ino
    )
    assert "lib/python3.11/site-packages/torch/__init__.py" in torch
    rest = tree(prefix)
    # Under a symlinked folder: stays, or a real lib64 folder in a layer would hide the link.
    assert "lib64/libcudart.so" not in cuda and rest["lib64"] == ("link", "lib")
    assert "lib/python3.11/site-packages/piponly.py" in rest and "share/empty" in rest
    assert not any(p.startswith(("include/cublas", "lib/libcublas")) for p in rest)
    assert cuda["lib"][1] == rest["lib"][1]  # a group's folders take the prefix's modes


def test_a_rest_package_update_changes_no_group_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    fa, fb = split(a, make_prefix(a, numpy="1.0")), split(b, make_prefix(b, numpy="2.0"))
    # The big file is random: equal contents mean the same build, as the layer digests would.
    (b / "groups/cuda/lib/libcublas.so.12").write_bytes((a / "groups/cuda/lib/libcublas.so.12").read_bytes())
    assert [tree(x) for x in fa] == [tree(y) for y in fb]
    assert tree(a / "opt/env") != tree(b / "opt/env")


def test_a_bad_groups_file_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    prefix = make_prefix(tmp_path)
    (tmp_path / "g.json").write_text("{}")
    script = str(data_dir("templates") / "split_env.py")
    r = subprocess.run(
        [sys.executable, script, "--prefix", str(prefix), str(tmp_path / "g.json")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and r.stderr.strip() == "split_env: KeyError: 'groups'"


@pytest.mark.parametrize("name", ["cuda-nvcc", "libcublas-dev", "libcudnn8", "pytorch", "mkl-service"])
def test_known_families_are_split_off(name: str) -> None:
    assert envlayers.groups(lock(name), "linux-64")


def test_with_a_pip_section_the_split_runs_in_the_conda_install_run() -> None:
    """In pip's RUN every rename would copy the group's files up from the conda layer below:
    the env stage image would hold each group twice. The split belongs to the conda RUN."""
    spec = SPEC.replace("[numpy]", "[numpy, {pip: [tinywheel==1.0]}]")
    pip = LockedPackage(
        manager="pip", platform="linux-64", name="tinywheel", version="1.0",
        url="https://files.example/tinywheel-1.0-py3-none-any.whl", sha256="2" * 64,
    )  # fmt: skip
    r = api.render(checked(spec), Lock(source="x", packages=(*lock(*STACK).packages, pip)), auto_lock=False)
    runs = [ins for ins in r.dockerfile.split("\nRUN ")[1:] if "install_env.py" in ins or " pip " in ins]
    conda_run = next(ins for ins in runs if "--lock conda-linux-64.lock" in ins)
    pip_run = next(ins for ins in runs if "-m pip install" in ins)
    assert "split_env.py" in conda_run.split("\n\n")[0] and "split_env.py" not in pip_run.split("\n\n")[0]
    assert "chmod -R a+rX /opt/env/conda-meta" in conda_run.split("split_env.py")[0]
