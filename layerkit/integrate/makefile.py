"""`layerkit make`: a GNU Makefile fragment with one target chain per environment,

    spec + layers -> lock -> rendered context (Dockerfile) -> image stamp named by the hash

so `make -j` redoes only what an edit affects. The fragment is meant to be `include`d by a
Makefile that regenerates it (README, "make"). Its own prerequisites are the files users edit
(specs, layers, base Dockerfiles), never a lock: make brings an included makefile's
prerequisites up to date on every call, even `make -n` or `make clean`, so a lock there would
be solved by any make call. A lock is a prerequisite of its own environment's targets only.
The hash covers the lock, so a lock newer than the fragment (made by a recipe or by hand)
makes the fragment stale by a parse-time test instead, and the stamp recipe names the stamp
by the hash as it is when the image is built.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from layerkit.errors import Position, SpecError
from layerkit.integrate.check import default_context_dir
from layerkit.integrate.discover import display

DEFAULT_STAMPS = Path(".layerkit/images")
# Characters make cannot take in a target or prerequisite even escaped: pattern (%), glob,
# archive-member, order-only, assignment and recipe separators, line structure.
_UNSAFE = re.compile(r"[%*?\[\]()|=;\\\n\r\t]")


@dataclass(frozen=True)
class EnvTargets:
    """The files of one environment's chain, as paths relative to where make runs."""

    name: str  # target prefix: NAME-lock, NAME-render, NAME-image
    spec: str
    sources: tuple[str, ...]  # the spec and every layer file it was merged from, sorted
    lock: str | None  # None: user_managed, nothing to lock
    render_inputs: tuple[str, ...]  # other files rendering reads (base Dockerfile), sorted
    context: str
    hash: str
    stamp: str


@dataclass(frozen=True)
class Fragment:
    envs: tuple[EnvTargets, ...]
    text: str


def target(path: str) -> str:
    """A path as a make target or prerequisite."""
    bad = _UNSAFE.search(path)
    if bad or path.startswith("~"):
        char = bad.group(0) if bad else "~"
        raise SpecError(f"make cannot name a file with {char!r} in its path; rename it", Position(path))
    return path.replace("$", "$$").replace(" ", "\\ ").replace("#", "\\#").replace(":", "\\:")


def shell(path: str) -> str:
    """A path as a word of a recipe's shell command."""
    return shlex.quote(path).replace("$", "$$")


def _env_name(spec: Path, declared: str | None) -> str:
    base = declared or (spec.parent.name if spec.name == "layerkit.yaml" else spec.name.split(".")[0])
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "env"


def env_targets(spec: Path, stamps: Path) -> tuple[EnvTargets, str | None]:
    """One environment's chain, and its spec's version (to tell same-named ones apart)."""
    from layerkit import inputs, pipeline

    with inputs.recording() as read:
        rendered = pipeline.render(spec)
    resolved = rendered.checked.resolved
    layers = {display(layer.path) for layer in resolved.layers if layer.path is not None}
    lockfile = pipeline.default_lock_path(spec)
    seen = {display(Path(p)) for p in read.files}
    name = _env_name(spec, resolved.spec.name)
    # The stamp is named as the recipe names it, by `layerkit hash`: a multi-platform spec's
    # image is its index, so its hash is the index's, not the first platform's.
    image_hash = rendered.hash.hash
    if len(pipeline.platforms(rendered.checked)) > 1:
        image_hash = pipeline.hash_index(rendered.checked, rendered.lock, False).hash
    env = EnvTargets(
        name=name,
        spec=display(spec),
        sources=tuple(sorted(layers)),
        lock=None if resolved.spec.user_managed else display(lockfile),
        render_inputs=tuple(sorted(seen - layers - {display(lockfile)})),
        context=display(default_context_dir(spec)),
        hash=image_hash,
        stamp=display(stamps / name / image_hash),
    )
    return env, resolved.spec.version


def _unique(envs: list[tuple[EnvTargets, str | None]], stamps: Path) -> list[EnvTargets]:
    """Environments named alike (two versions of one name) take NAME-VERSION."""
    count: dict[str, int] = {}
    for e, _ in envs:
        count[e.name] = count.get(e.name, 0) + 1
    out = []
    for e, version in envs:
        if count[e.name] > 1 and version:
            name = _env_name(Path(e.spec), f"{e.name}-{version}")
            e = replace(e, name=name, stamp=display(stamps / name / e.hash))
        out.append(e)
    taken: dict[str, str] = {}
    for e in sorted(out, key=lambda e: e.spec):
        if e.name in taken:
            raise SpecError(
                f"environment name '{e.name}' is also {taken[e.name]}'s; give one of them "
                "another `name` (or `version`) so their make targets differ",
                Position(e.spec),
            )
        taken[e.name] = e.spec
    return sorted(out, key=lambda e: e.spec)


def _rule(targets: Sequence[str], prereqs: Sequence[str], recipe: Sequence[str] = ()) -> str:
    head = " ".join(target(t) for t in targets) + ":"
    if prereqs:
        head += " " + " ".join(target(p) for p in prereqs)
    return "".join([head + "\n", *(f"\t{line}\n" for line in recipe)])


def _env_rules(e: EnvTargets) -> str:
    spec = shell(e.spec)
    dockerfile = f"{e.context}/Dockerfile"
    parts = [f"# {e.name}: {e.spec}\n"]
    if e.lock is not None:
        # Solve only when the lock is stale: a touched layer or an edited comment keeps it.
        # A fresh lock takes the fragment's time: newer than its sources (the fragment is),
        # not newer than the fragment, whose hashes it leaves as they are.
        lock = shell(e.lock)
        parts.append(_rule([e.lock], e.sources, [
            f"if $(LAYERKIT) -q lock --check {spec} 2>/dev/null; then touch -r $(_layerkit_mk_sh) {lock}; "
            f"else $(LAYERKIT) lock $(LAYERKIT_LOCK_FLAGS) {spec} && touch {lock}; fi",
        ]))  # fmt: skip
    render_prereqs = [*e.sources, *([e.lock] if e.lock else []), *e.render_inputs]
    # check --fix rewrites only what differs and drops leftovers; touch tells make it ran.
    parts.append(_rule([dockerfile], render_prereqs, [
        f"$(LAYERKIT) -q check --fix {spec} --context {shell(e.context)}",
        f"@touch {shell(dockerfile)}",
    ]))  # fmt: skip
    stamp_dir = str(Path(e.stamp).parent)
    # Named by the hash at build time: a lock solved in this run changed it since the
    # fragment was written (the next make call rewrites the fragment to match).
    parts.append(_rule([e.stamp], [dockerfile], [
        f"@mkdir -p {shell(stamp_dir)}",
        f"$(LAYERKIT_BUILD) {spec} > {shell(e.stamp + '.tmp')}",
        f"@h=$$($(LAYERKIT) -q hash {spec}) && mv {shell(e.stamp + '.tmp')} {shell(stamp_dir)}/$$h",
    ]))  # fmt: skip
    phony = [(f"{e.name}-lock", [e.lock] if e.lock else []), (f"{e.name}-render", [dockerfile]),
             (f"{e.name}-image", [e.stamp])]  # fmt: skip
    parts.append(_rule([".PHONY"], [n for n, _ in phony]))
    parts.extend(_rule([n], deps) for n, deps in phony)
    return "".join(parts)


def render_fragment(envs: Sequence[EnvTargets]) -> str:
    inputs = sorted({p for e in envs for p in (*e.sources, *e.render_inputs)})
    locks = " ".join(shell(e.lock) for e in envs if e.lock)
    head = [
        "# Generated by `layerkit make`: do not edit; it is remade when its inputs change.\n",
        "LAYERKIT ?= layerkit\n",
        "LAYERKIT_LOCK_FLAGS ?=\n",
        "LAYERKIT_BUILD_FLAGS ?=\n",
        "LAYERKIT_BUILD ?= $(LAYERKIT) build $(LAYERKIT_BUILD_FLAGS)\n",
        "LAYERKIT_MK := $(lastword $(MAKEFILE_LIST))\n",
        # Including this file must not change the includer's default goal.
        "_layerkit_goal := $(.DEFAULT_GOAL)\n",
        "\n",
        "_layerkit_mk_sh := '$(subst ','\\'',$(LAYERKIT_MK))'\n",
        "\n",
        "# The fragment is stale when a spec, layer or base Dockerfile is newer. Locks are not\n",
        "# its prerequisites (make would solve them on every call, even under -n): a lock newer\n",
        "# than it, which changes the hashes, is found when make reads it.\n",
        "$(LAYERKIT_MK): " + " ".join(target(p) for p in inputs) + "\n",
        *(
            [
                f"ifneq ($(shell find {locks} -newer $(_layerkit_mk_sh) 2>/dev/null),)\n",
                "$(LAYERKIT_MK): layerkit-relocked\n",
                "endif\n",
                ".PHONY: layerkit-relocked\n",
                "layerkit-relocked: ;\n",
            ]
            if locks
            else []
        ),
    ]
    body = [_env_rules(e) for e in envs]
    tail = [
        _rule([".PHONY"], ["all", "layerkit-all", "layerkit-locks", "layerkit-renders"]),
        _rule(["layerkit-all"], [f"{e.name}-image" for e in envs]),
        _rule(["layerkit-locks"], [f"{e.name}-lock" for e in envs]),
        _rule(["layerkit-renders"], [f"{e.name}-render" for e in envs]),
        _rule(["all"], ["layerkit-all"]),
        ".DEFAULT_GOAL := $(_layerkit_goal)\n",
    ]
    return "".join(head) + "\n" + "\n".join(body) + "\n" + "".join(tail)


def make_fragment(specs: Sequence[Path], *, stamps: Path = DEFAULT_STAMPS) -> Fragment:
    envs = _unique([env_targets(spec, stamps) for spec in sorted(set(specs))], stamps)
    return Fragment(tuple(envs), render_fragment(envs))
