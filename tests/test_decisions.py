"""decisions.decide, the one found/copy/build decision `plan` prints and `build` executes,
over registry states given by a fake registry (pure logic; tests/test_plan_build.py checks
plan against real builds on a real registry)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest

import layerkit.build.lookup as lookup
from layerkit.build.decisions import Copy, Decision, StageImage, decide
from layerkit.build.lookup import Accept, Layout, Registries
from layerkit.build.options import BuildOptions
from layerkit.build.registry import ImageRef, ManifestInfo
from layerkit.build.request import targets
from layerkit.errors import DaemonError, RegistryUnreachable

WS, GLOBAL = "ws:5000", "global:5000"
H, BASE_H, ENV_H = "a" * 64, "b" * 64, "c" * 64
IMAGE = f"{WS}/t:{H}"
BASE, ENV = f"{WS}/t-base:{BASE_H}", f"{WS}/t-env:{ENV_H}"
CACHE = f"{WS}/t-cache"
G_IMAGE, G_BASE, G_ENV = f"{GLOBAL}/t:{H}", f"{GLOBAL}/t-base:{BASE_H}", f"{GLOBAL}/t-env:{ENV_H}"
ALL_WS = {IMAGE, BASE, ENV, f"{CACHE}:image-{H}", f"{CACHE}:base-{BASE_H}", f"{CACHE}:env-{ENV_H}"}


@dataclass
class FakeRegistry:
    """Manifest HEADs answered from a set of refs; hosts in ``down`` refuse."""

    refs: set[str]
    down: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)

    def head_manifest(self, ref: ImageRef) -> ManifestInfo | None:
        text = f"{ref.registry}/{ref.repository}:{ref.tag}"
        self.asked.append(text)
        if ref.registry in self.down:
            raise RegistryUnreachable(f"cannot reach registry {ref.registry}")
        return (
            ManifestInfo(dg(text), "application/vnd.oci.image.manifest.v1+json", 1)
            if text in self.refs
            else None
        )


def dg(ref: str) -> str:
    """The digest the fake registry gives `ref`: one per ref."""
    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()


def layout(address: str | None = WS, globals_: tuple[str, ...] = (), tags: tuple[str, ...] = ()) -> Layout:
    plan = targets(f"{address}/t" if address else "t", H, {"base": BASE_H, "env": ENV_H}, tags)
    return Layout(address, plan, address, tuple(f"{g}/t:{H}" for g in globals_), "")


def decided(
    refs: set[str],
    *,
    lay: Layout | None = None,
    down: tuple[str, ...] = (),
    offline: bool = False,
    accept: Accept | None = None,
    **opts: object,
) -> tuple[Decision, list[str], FakeRegistry]:
    reg = FakeRegistry(refs, set(down))
    warnings: list[str] = []
    registries = Registries(reg, warnings.append)  # type: ignore[arg-type]
    options = BuildOptions(**opts)  # type: ignore[arg-type]
    decision = decide(lay or layout(), registries, options, warnings.append, offline=offline, accept=accept)
    return decision, warnings, reg


def stages(d: Decision) -> list[tuple[str, bool | None, bool | None, bool]]:
    return [(s.stage, s.exists, s.cache_exists, s.build) for s in d.stage_images]


def test_nothing_in_the_registry_builds_and_pushes_every_stage_with_its_cache() -> None:
    d, warnings, _ = decided(set())
    assert (d.action, d.found_at, d.push, d.uses) == ("build", None, True, IMAGE)
    assert stages(d) == [("base", False, False, True), ("env", False, False, True)]
    assert d.cache_from == () and d.registry_caches == () and d.copies == ()
    assert d.cache_exports == (f"{CACHE}:image-{H}", f"{CACHE}:base-{BASE_H}", f"{CACHE}:env-{ENV_H}")
    assert warnings == []


def test_found_means_the_image_and_every_stage_image() -> None:
    d, warnings, reg = decided({IMAGE, BASE, ENV})
    assert (d.action, d.found_at, d.uses, d.push) == ("found", IMAGE, IMAGE, False)
    assert [s.exists for s in d.stage_images] == [True, True]
    assert d.cache_from == d.cache_exports == d.copies == ()
    assert reg.asked == [IMAGE, BASE, ENV]  # skip-by-hash asks nothing more
    assert warnings == []


def test_an_image_without_its_env_stage_image_is_built_again_to_push_it() -> None:
    # What a push that died between the stage images would leave (or an older copy).
    d, warnings, _ = decided(ALL_WS - {ENV})
    assert d.action == "build"
    assert stages(d) == [("base", True, True, False), ("env", False, True, True)]
    assert d.cache_from == (BASE, IMAGE)  # the incomplete image seeds the cache
    assert d.cache_exports == (f"{CACHE}:image-{H}", f"{CACHE}:env-{ENV_H}")
    assert any(ENV in w and "building it again" in w for w in warnings), warnings


def test_stage_images_without_the_image_are_reused_and_only_the_image_is_solved() -> None:
    d, _, _ = decided(ALL_WS - {IMAGE})
    assert d.action == "build"
    assert stages(d) == [("base", True, True, False), ("env", True, True, False)]
    assert d.cache_from == (BASE, ENV)
    assert set(d.registry_caches) == ALL_WS - {IMAGE, BASE, ENV}
    assert d.cache_exports == (f"{CACHE}:image-{H}",)


def test_a_stage_image_without_its_cache_is_solved_again_on_registry_cache_engines_only() -> None:
    d, _, _ = decided({BASE, ENV, f"{CACHE}:env-{ENV_H}"})
    base, env = d.stage_images
    assert (base.build, base.solved(registry_cache=True), base.solved(registry_cache=False)) == (
        True,
        True,
        False,
    )
    assert (env.build, env.solved(registry_cache=True), env.solved(registry_cache=False)) == (
        False,
        False,
        False,
    )
    missing = StageImage("env", ENV, False, "", False, True)
    assert missing.solved(registry_cache=False)


def test_a_global_hit_is_copied_stage_images_first_and_the_image_last() -> None:
    d, _, _ = decided({G_IMAGE, G_BASE, G_ENV}, lay=layout(globals_=(GLOBAL,)))
    assert (d.action, d.found_at, d.push, d.uses) == ("copy", G_IMAGE, True, IMAGE)
    assert d.copies == (
        Copy(G_BASE, BASE, dg(G_BASE)),
        Copy(G_ENV, ENV, dg(G_ENV)),
        Copy(G_IMAGE, IMAGE, dg(G_IMAGE)),
    )
    assert d.found_digest == dg(G_IMAGE)
    assert d.to_json()["copies"][-1] == {"from": G_IMAGE, "to": IMAGE, "digest": dg(G_IMAGE)}


def test_a_global_image_without_its_stage_images_is_not_reused() -> None:
    d, _, _ = decided({G_IMAGE, G_BASE}, lay=layout(globals_=(GLOBAL,)))
    assert d.action == "build" and d.copies == ()


def test_workspace_down_uses_the_global_image_as_it_is() -> None:
    # The known divergence: plan said copy, build used the global image. Both say found now.
    d, warnings, _ = decided({G_IMAGE, G_BASE, G_ENV}, lay=layout(globals_=(GLOBAL,)), down=(WS,))
    assert (d.action, d.found_at, d.uses, d.copies, d.push) == ("found", G_IMAGE, G_IMAGE, (), False)
    assert [s.exists for s in d.stage_images] == [None, None]
    assert any(WS in w for w in warnings), warnings


def test_workspace_down_and_nowhere_else_is_unchecked_and_pushes_nothing() -> None:
    d, warnings, _ = decided(ALL_WS, down=(WS,))
    assert (d.action, d.push) == ("unchecked", False)
    assert stages(d) == [("base", None, None, False), ("env", None, None, False)]
    assert d.cache_from == d.registry_caches == d.cache_exports == ()
    assert any("is not pushed" in w for w in warnings), warnings


def test_offline_asks_nothing() -> None:
    d, warnings, reg = decided(ALL_WS, offline=True)
    assert (d.action, d.push, reg.asked, warnings) == ("unchecked", False, [], [])
    assert stages(d) == [("base", None, None, False), ("env", None, None, False)]


def test_force_builds_from_the_image_it_replaces() -> None:
    d, warnings, _ = decided(ALL_WS, force=True)
    assert d.action == "build" and IMAGE in d.cache_from
    assert stages(d) == [("base", True, True, False), ("env", True, True, False)]
    assert warnings == []


def test_earlier_builds_under_the_name_tag_seed_the_cache() -> None:
    d, _, _ = decided({f"{WS}/t:demo-1"}, lay=layout(tags=("demo-1",)))
    assert d.action == "build" and d.cache_from == (f"{WS}/t:demo-1",)
    assert d.tags == (f"{WS}/t:demo-1",)


def test_no_push_builds_no_stage_image() -> None:
    d, _, _ = decided(set(), push=False)
    assert d.action == "build" and not d.push and d.cache_exports == ()
    assert [s.build for s in d.stage_images] == [False, False]


def test_registry_less_images_are_found_in_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lookup, "_local_image", lambda addr, ref: ref == f"t:{H}")
    d, _, reg = decided(set(), lay=layout(address=None))
    assert (d.action, d.found_at, d.registry, d.push) == ("found", f"t:{H}", None, False)
    assert reg.asked == []

    def down(addr: str | None, ref: str) -> bool:
        raise DaemonError("cannot reach the engine")

    monkeypatch.setattr(lookup, "_local_image", down)
    d, warnings, _ = decided(set(), lay=layout(address=None))
    assert d.action == "unchecked" and any("cannot tell" in w for w in warnings)
    monkeypatch.setattr(lookup, "_local_image", lambda addr, ref: False)
    d, _, _ = decided(set(), lay=layout(address=None))
    assert (d.action, d.push, [s.build for s in d.stage_images]) == ("build", False, [False, False])


class Gate:
    """A signature gate that accepts the digests in ``signed`` and records what it was asked."""

    def __init__(self, signed: set[str]) -> None:
        self.signed = signed
        self.asked: list[tuple[str, str | None]] = []

    def __call__(self, ref: str, digest: str | None) -> bool:
        self.asked.append((ref, digest))
        return digest in self.signed


def test_the_gate_is_asked_about_the_digest_the_decision_then_uses() -> None:
    """Found: the gate verifies the digest the HEAD gave, and the Decision carries that digest,
    so what is reused is what was verified even if the tag moves afterwards."""
    gate = Gate({dg(IMAGE)})
    d, _, _ = decided(ALL_WS, accept=gate)
    assert (d.action, d.found_at, d.found_digest) == ("found", IMAGE, dg(IMAGE))
    assert gate.asked == [(IMAGE, dg(IMAGE))]
    assert d.to_json()["found_digest"] == dg(IMAGE)


def test_a_global_copy_is_of_the_verified_digest() -> None:
    gate = Gate({dg(G_IMAGE)})
    d, _, _ = decided({G_IMAGE, G_BASE, G_ENV}, lay=layout(globals_=(GLOBAL,)), accept=gate)
    assert d.action == "copy" and gate.asked == [(G_IMAGE, dg(G_IMAGE))]
    assert d.copies[-1] == Copy(G_IMAGE, IMAGE, dg(G_IMAGE))


def test_earlier_builds_under_the_name_tag_seed_the_cache_only_through_the_gate() -> None:
    prior = f"{WS}/t:demo-1"
    refused, _, _ = decided({prior}, lay=layout(tags=("demo-1",)), accept=Gate(set()))
    assert refused.action == "build" and refused.cache_from == ()
    trusted, _, _ = decided({prior}, lay=layout(tags=("demo-1",)), accept=Gate({dg(prior)}))
    assert trusted.cache_from == (prior,)
