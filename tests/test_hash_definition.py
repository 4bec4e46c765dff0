"""The hash is the whole build definition (issue 15 §1): the rendered Dockerfile and every
context file, normalised (hashing/normalise.py) from canonical inputs (hashing/canonical.py).

What must not count (identity, mirrors, credentials, comments, dependency order) leaves the
normalised definition byte-identical; any other change of what is built changes the hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from test_render_golden import FLAVOURS, GOLDEN, _flavour_spec

from layerkit import api
from layerkit.digest import canonical_json
from layerkit.hashing.content import definition
from layerkit.lock.model import Lock, LockedPackage
from layerkit.render import jinja
from layerkit.render.blocks import system
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import Checked, check

TABLE = GOLDEN / "hashes.json"  # golden name -> [sha256 of its Dockerfile, hash names blanked; its hash]
# An inference image's Dockerfile (inference-*.Dockerfile) is named by its inference hash.
_HASHES = re.compile(r'(Environment hash: |io\.layerkit\.(?:hash|stage\.\w+|inference\.\w+)=")[0-9a-f]{64}')


def _checked(text: str, name: str = "s.yaml") -> Checked:
    return check(resolve(load_text(text, name)))


def _golden_state(path: Path) -> tuple[str, str]:
    text = path.read_text()
    found = re.search(r'io\.layerkit\.inference\.hash="([0-9a-f]{64})"', text) or re.search(
        r'io\.layerkit\.hash="([0-9a-f]{64})"', text
    )
    assert found is not None, f"{path.name} has no hash label"
    return hashlib.sha256(_HASHES.sub(r"\1", text).encode()).hexdigest(), found.group(1)


def test_every_golden_change_changes_its_hash(update_golden: bool) -> None:
    """A golden Dockerfile whose body changed while its hash did not names two images."""
    current = {p.stem: list(_golden_state(p)) for p in sorted(GOLDEN.glob("*.Dockerfile"))}
    if update_golden:
        TABLE.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    recorded = json.loads(TABLE.read_text())
    assert set(recorded) == set(current), "goldens added or removed: run pytest --update-golden"
    same_hash = [n for n, (sha, h) in current.items() if recorded[n][0] != sha and recorded[n][1] == h]
    assert not same_hash, f"Dockerfile changed but its hash did not: {same_hash}"
    assert recorded == current, "hashes moved with their Dockerfiles: review, then pytest --update-golden"


def test_no_two_goldens_share_a_hash() -> None:
    states = [_golden_state(p) for p in GOLDEN.glob("*.Dockerfile")]
    by_hash: dict[str, set[str]] = {}
    for sha, h in states:
        by_hash.setdefault(h, set()).add(sha)
    assert all(len(v) == 1 for v in by_hash.values())


SPEC = """
name: {name}
conda:
  channels: [conda-forge]
  dependencies: [python=3.11, numpy=1.26]
  pip: [requests==2.32.3]
apt: [git]
"""


def _hash(text: str) -> str:
    return api.hash_spec(_checked(text), auto_lock=False).hash


def test_a_template_line_changes_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    before = api.hash_spec(_checked(SPEC.format(name="a")), auto_lock=False)
    from layerkit import precompiled
    from layerkit.resources import data_dir

    source = (data_dir("templates") / precompiled.TEMPLATE).read_text()
    patched = source.replace("SHELL {{ i.exec_form }}", "SHELL {{ i.exec_form }}\nENV PIP_NO_CACHE_DIR=1")
    assert patched != source
    monkeypatch.setattr(jinja, "template", lambda: jinja._env().from_string(patched))
    after = api.hash_spec(_checked(SPEC.format(name="a")), auto_lock=False)
    assert after.hash != before.hash and after.stages["base"] != before.stages["base"]
    assert after.stages["env"] == before.stages["env"]  # the env stage prints no SHELL


def test_the_apt_flag_changes_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _hash(SPEC.format(name="a"))
    real = system.apt_install

    def recommends(packages: tuple[str, ...], pinned: bool) -> object:
        r = real(packages, pinned)
        first = r.commands[1]
        swapped = type(first)(
            first.text.replace("--no-install-recommends", "--install-recommends"), first.items
        )
        return type(r)((r.commands[0], swapped, *r.commands[2:]), r.mounts)

    monkeypatch.setattr(system, "apt_install", recommends)
    assert "--install-recommends" in api.render(_checked(SPEC.format(name="a")), auto_lock=False).dockerfile
    assert _hash(SPEC.format(name="a")) != before


def test_a_shipped_script_changes_only_its_stage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from layerkit import resources

    before = api.hash_spec(_checked(SPEC.format(name="a")), auto_lock=False)
    real = resources.data_dir("templates")
    for f in real.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "install_env.py").write_text(
        (tmp_path / "install_env.py").read_text() + "\nprint('changed')\n"
    )
    monkeypatch.setattr(resources, "data_dir", lambda name: tmp_path if name == "templates" else real)
    after = api.hash_spec(_checked(SPEC.format(name="a")), auto_lock=False)
    assert after.hash != before.hash and after.stages["env"] != before.stages["env"]
    assert after.stages["base"] == before.stages["base"]


MIRRORS = """mirrors:
  channels: {conda-forge: "http://mirror.internal/cf"}
  channel_alias: http://alias.internal/conda
  pypi_index: http://pypi.internal/simple
  base_registry: hub.internal:5000
"""


def test_mirrors_do_not_enter_the_definition() -> None:
    plain, mirrored = _checked(SPEC.format(name="a")), _checked(SPEC.format(name="a") + MIRRORS)
    assert "hub.internal:5000" in api.render(mirrored, auto_lock=False).dockerfile  # they are used
    assert canonical_json(definition(plain, "linux-64").to_json()) == canonical_json(
        definition(mirrored, "linux-64").to_json()
    )
    a, b = api.hash_spec(plain, auto_lock=False), api.hash_spec(mirrored, auto_lock=False)
    assert (a.hash, a.stages) == (b.hash, b.stages)


def _lock(url_root: str, base_ref: str) -> Lock:
    pkg = LockedPackage(manager="conda", platform="linux-64", name="python", version="3.11.9", build="h0_0",
                        url=f"{url_root}/linux-64/python-3.11.9-h0_0.conda", sha256="a" * 64)  # fmt: skip
    return Lock(source="x.conda-lock.yml", packages=(pkg,), base_digests=((base_ref, "sha256:" + "b" * 64),))


def test_a_lock_made_through_mirrors_is_the_same_definition() -> None:
    plain, mirrored = _checked(SPEC.format(name="a")), _checked(SPEC.format(name="a") + MIRRORS)
    direct = _lock("https://conda.anaconda.org/conda-forge", "ubuntu:22.04")
    through = _lock("http://mirror.internal/cf", "hub.internal:5000/library/ubuntu:22.04")
    a, b = api.hash_spec(plain, direct), api.hash_spec(mirrored, through)
    assert "@sha256:" + "b" * 64 in a.parts["dockerfile"]  # the base pin is kept, under its own name
    assert (a.hash, a.stages) == (b.hash, b.stages)
    moved = _lock("http://mirror.internal/cf", "hub.internal:5000/library/ubuntu:22.04").model_copy(
        update={"base_digests": (("hub.internal:5000/library/ubuntu:22.04", "sha256:" + "c" * 64),)}
    )
    assert api.hash_spec(mirrored, moved).hash != b.hash  # a moved base is another image


def test_a_checksum_pinned_package_is_the_same_wherever_it_is_fetched_from() -> None:
    checked = _checked(SPEC.format(name="a"))
    pip = LockedPackage(manager="pip", platform="linux-64", name="requests", version="2.32.3",
                        url="https://files.pythonhosted.org/packages/ab/requests-2.32.3-py3-none-any.whl",
                        sha256="d" * 64)  # fmt: skip
    lock = _lock("https://conda.anaconda.org/conda-forge", "ubuntu:22.04")
    lock = lock.model_copy(update={"packages": (*lock.packages, pip)})
    moved = {"url": "http://devpi.internal/root/pypi/+f/d00/requests-2.32.3-py3-none-any.whl"}
    relocked = lock.model_copy(update={"packages": (lock.packages[0], pip.model_copy(update=moved))})
    assert api.render(checked, lock).files != api.render(checked, relocked).files
    assert api.hash_spec(checked, lock).hash == api.hash_spec(checked, relocked).hash
    other = lock.model_copy(
        update={"packages": (lock.packages[0], pip.model_copy(update={"sha256": "e" * 64}))}
    )
    assert api.hash_spec(checked, other).hash != api.hash_spec(checked, lock).hash


CRED = """
name: c
conda:
  channels: ["https://conda.example.com/t/${{{tok}}}/main"]
  dependencies: [python=3.11]
  pip: ["--index-url https://{user}@pypi.example.com/simple", requests==2.32.3]
"""


@pytest.mark.parametrize(
    ("tok", "user"),
    [
        ("OTHER_TOKEN", "${PIP_USER}:${PIP_TOKEN}"),
        ("CH_TOKEN", "${PIP_LOGIN}:${PIP_PASS}"),
        ("ANA_TOK", "${ANA_USER}:${ANA_PASS}"),
    ],
)
def test_credentials_do_not_enter_the_hash(tok: str, user: str) -> None:
    ref = _checked(CRED.format(tok="CH_TOKEN", user="${PIP_USER}:${PIP_TOKEN}"))
    other = _checked(CRED.format(tok=tok, user=user))
    assert api.render(ref, auto_lock=False).files != api.render(other, auto_lock=False).files
    assert api.hash_spec(ref, auto_lock=False).hash == api.hash_spec(other, auto_lock=False).hash
    names = re.findall(r"\$\{(\w+)\}", CRED.format(tok=tok, user=user))
    assert names and not any(n in json.dumps(definition(other, "linux-64").to_json()) for n in names)


def test_the_credentialed_host_does_enter_the_hash() -> None:
    ref = _checked(CRED.format(tok="CH_TOKEN", user="${PIP_USER}:${PIP_TOKEN}"))
    other = _checked(
        CRED.format(tok="CH_TOKEN", user="${PIP_USER}:${PIP_TOKEN}").replace("pypi.example", "pypi.other")
    )
    assert api.hash_spec(ref, auto_lock=False).hash != api.hash_spec(other, auto_lock=False).hash


# Completeness, property-style over every flavour: variants that differ only in what the hash
# leaves out on purpose have byte-identical normalised definitions and equal hashes; variants
# whose rendered build (Dockerfile without comments and layerkit's labels, context files)
# differs have different hashes.
EXCLUDED = {  # pairs of variants that differ only in what is left out on purpose
    "identity": (
        lambda t: t,
        lambda t: t.replace("name: golden-", "name: renamed-") + 'version: "9"\ndescription: other\n',
    ),
    "mirrors": (lambda t: t, lambda t: t + MIRRORS),
    "dependency order": (
        lambda t: t.replace("[numpy=1.26]", "[numpy=1.26, python=3.11]"),
        lambda t: t.replace("[numpy=1.26]", "[python=3.11, numpy=1.26]"),
    ),
}
INCLUDED = {
    "apt": lambda t: t + "apt: [git]\n",
    "dependency": lambda t: t.replace("[numpy=1.26]", "[numpy=1.25]"),
    "env": lambda t: t + "env: {A: '1'}\n",
    "step": lambda t: t + "steps:\n  - run: echo hi\n",
    "channel order": lambda t: t.replace("conda:\n", "conda:\n  channels: [defaults, conda-forge]\n"),
    "user": lambda t: t + "runtime:\n  user: other\n",
}


def _built(checked: Checked) -> str:
    """What a build reads, but layerkit's comments and labels (which name the hash itself)."""
    r = api.render(checked, auto_lock=False)
    lines = [ln for ln in r.dockerfile.splitlines() if not ln.startswith("#") and "io.layerkit." not in ln]
    return "\n".join(lines) + json.dumps(sorted(r.plan.context_files))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_hash_is_complete_over_the_flavours(flavour: str) -> None:
    base = _flavour_spec(flavour)
    ref = _checked(base)
    ref_hash = api.hash_spec(ref, auto_lock=False)
    for why, (one, two) in EXCLUDED.items():
        a, b = _checked(one(base)), _checked(two(base))
        assert (
            api.render(a, auto_lock=False).files != api.render(b, auto_lock=False).files or why != "mirrors"
        )
        assert canonical_json(definition(a, "linux-64").to_json()) == canonical_json(
            definition(b, "linux-64").to_json()
        ), why
        assert api.hash_spec(a, auto_lock=False).hash == api.hash_spec(b, auto_lock=False).hash, why
    seen = {_built(ref): ref_hash.hash}
    for why, change in INCLUDED.items():
        other = _checked(change(base))
        built, h = _built(other), api.hash_spec(other, auto_lock=False).hash
        assert built != _built(ref), f"{why} changes nothing built: a void case"
        assert seen.setdefault(built, h) == h and h not in {v for k, v in seen.items() if k != built}, why
