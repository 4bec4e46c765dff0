"""What layerkit asks BuildKit for, per backend: pure logic, no daemon."""

from __future__ import annotations

import json

import pytest

from layerkit.build.client import DaemonInfo, WorkerInfo, capabilities_of
from layerkit.build.request import (
    REPRODUCIBLE_EPOCH,
    Target,
    is_local_registry,
    name_tag,
    repository,
    reproducible_epoch,
    solve_args,
    targets,
)
from layerkit.errors import SpecError

H, B, E = "a" * 64, "b" * 64, "c" * 64


def test_targets_put_the_image_first_then_shared_stages() -> None:
    plan = targets("localhost:5000/team/layerkit", H, {"base": B, "env": E}, ["demo-1"])
    assert [(t.stage, t.ref) for t in plan] == [
        (None, f"localhost:5000/team/layerkit:{H}"),
        ("base", f"localhost:5000/team/layerkit-base:{B}"),
        ("env", f"localhost:5000/team/layerkit-env:{E}"),
    ]
    assert plan[0].refs == (f"localhost:5000/team/layerkit:{H}", "localhost:5000/team/layerkit:demo-1")
    assert plan[1].refs == (plan[1].ref,)  # stage images carry only their hash tag


def test_user_managed_has_no_env_stage() -> None:
    assert [t.stage for t in targets("r/x", H, {"base": B})] == [None, "base"]


@pytest.mark.parametrize(
    ("name", "version", "tag"),
    [
        ("demo-train", "1", "demo-train-1"),
        ("Demo Train", "2.0+local", "Demo-Train-2.0-local"),
        ("x", None, "x"),
        (None, "1", None),
        ("..", None, None),
    ],
)
def test_name_tag_is_a_valid_docker_tag(name: str | None, version: str | None, tag: str | None) -> None:
    assert name_tag(name, version) == tag


def test_repository_defaults_and_rejects_bad_names() -> None:
    assert repository("localhost:5000/", None) == "localhost:5000/layerkit"
    assert repository(None, "team/envs") == "team/envs"
    with pytest.raises(SpecError, match="lower-case"):
        repository("r:5000", "Team/Envs")


def test_local_registry_detection() -> None:
    assert is_local_registry("localhost:5000/layerkit")
    assert is_local_registry("127.0.0.1:5000/a/b")
    assert not is_local_registry("registry.example.com/layerkit")
    assert not is_local_registry("layerkit")


def test_dockerd_request_uses_moby_inline_cache_and_cache_from_attr() -> None:
    t = Target(None, H, "localhost:5000/layerkit", ("demo-1",))
    args = solve_args(
        t,
        embedded=True,
        cache_from=["r/b:2", "r/a:1", "r/a:1"],
        network="host",
        push=True,
        registry_caches=["r/x-cache:image-1"],
        export_cache=True,
    )
    assert args.exporter == "moby"
    assert args.exporter_attrs == {"name": f"localhost:5000/layerkit:{H},localhost:5000/layerkit:demo-1"}
    assert args.frontend_attrs == {
        "filename": "Dockerfile",
        "force-network-mode": "host",
        "cache-from": "r/a:1,r/b:2",
    }
    assert args.cache_imports == ()
    assert args.cache_exports == (("inline", {}),)
    assert args.entitlements == ("network.host",)


def test_stage_target_and_default_network() -> None:
    args = solve_args(
        Target("base", B, "r:1/x-base"),
        embedded=True,
        cache_from=[],
        network="default",
        push=True,
    )
    assert args.frontend_attrs["target"] == "base"
    assert args.frontend_attrs["label:io.layerkit.stage-hash"] == B
    assert "force-network-mode" not in args.frontend_attrs
    assert "cache-from" not in args.frontend_attrs
    assert args.entitlements == ()


def test_targets_name_each_registry_cache_by_its_own_hash() -> None:
    plan = targets("localhost:5000/team/layerkit", H, {"base": B, "env": E})
    assert [t.cache_ref for t in plan] == [
        f"localhost:5000/team/layerkit-cache:image-{H}",
        f"localhost:5000/team/layerkit-cache:base-{B}",
        f"localhost:5000/team/layerkit-cache:env-{E}",
    ]
    # Another environment on the same base: the base stage's cache is the same one.
    other = targets("localhost:5000/team/layerkit", "d" * 64, {"base": B, "env": "e" * 64})
    assert other[1].cache_ref == plan[1].cache_ref and other[2].cache_ref != plan[2].cache_ref


def test_buildkitd_request_pushes_with_its_own_registry_cache_mode_max() -> None:
    plan = targets("localhost:5000/layerkit", H, {"base": B, "env": E})
    caches = [t.cache_ref for t in plan]
    stage_image = "localhost:5000/layerkit-base:" + B
    for t in plan:
        args = solve_args(t, embedded=False, cache_from=[stage_image], network="none", push=True,
                          registry_caches=caches, export_cache=True)  # fmt: skip
        assert args.exporter == "image"
        # No epoch (this engine does not rewrite layers): images are made gzip whatever the
        # imported caches hold (a reproducible engine's are zstd).
        gzip = {"compression": "gzip", "force-compression": "true"}
        assert args.exporter_attrs == {"name": t.ref, "push": "true", "registry.insecure": "true"} | gzip
        # Each solve writes only its own cache, and reads every target's.
        assert [a for k, a in args.cache_exports if k == "registry"] == [{"ref": t.cache_ref, "mode": "max"}]
        assert [a["ref"] for _, a in args.cache_imports] == [stage_image, *sorted(caches)]
        assert json.loads(args.frontend_attrs["cache-imports"])[1] == {
            "Type": "registry",
            "Attrs": {"ref": sorted(caches)[0]},
        }
        assert args.entitlements == ()


def test_an_unpublished_solve_exports_only_its_registry_cache() -> None:
    # The image's first solve when it is pushed last: built, its cache exported, no image.
    t = targets("localhost:5000/layerkit", H, {"base": B})[0]
    args = solve_args(t, embedded=False, cache_from=[], network="none", push=True,
                      registry_caches=[t.cache_ref], export_cache=True, publish=False)  # fmt: skip
    assert (args.exporter, args.exporter_attrs) == ("", {})
    assert args.cache_exports == (("registry", {"ref": t.cache_ref, "mode": "max"}),)
    assert args.cache_imports == (("registry", {"ref": t.cache_ref}),)
    published = solve_args(t, embedded=False, cache_from=[], network="none", push=True,
                           registry_caches=[t.cache_ref], export_cache=True)  # fmt: skip
    assert published.exporter == "image" and ("inline", {}) in published.cache_exports


def test_buildkitd_without_push_exports_no_registry_cache() -> None:
    t = targets("registry.example.com/layerkit", H, {})[0]
    args = solve_args(t, embedded=False, cache_from=[], network="default", push=False,
                      registry_caches=[t.cache_ref], export_cache=True)  # fmt: skip
    assert args.exporter_attrs["push"] == "false"
    assert "registry.insecure" not in args.exporter_attrs
    assert all(kind != "registry" for kind, _ in args.cache_exports)
    assert args.cache_imports == (("registry", {"ref": t.cache_ref}),)


def test_dockerd_moby_request_ignores_registry_caches() -> None:
    # dockerd 20.10 (moby exporter) can neither export nor be handed registry caches.
    t = targets("localhost:5000/layerkit", H, {})[0]
    args = solve_args(t, embedded=True, cache_from=[], network="default", push=True,
                      registry_caches=[t.cache_ref], export_cache=True)  # fmt: skip
    assert args.cache_imports == () and args.cache_exports == (("inline", {}),)
    assert "cache-from" not in args.frontend_attrs


def _worker(wid: str, **labels: str) -> WorkerInfo:
    return WorkerInfo(
        wid, ("linux/amd64",), {f"org.mobyproject.buildkit.worker.{k}": v for k, v in labels.items()}
    )


def test_capabilities_come_from_the_daemons_workers_not_its_version() -> None:
    # Docker 20.10 (classic store): its own "moby" worker; moby exporter, inline cache only.
    old = capabilities_of([_worker("moby", executor="oci")], None, via_docker=True)
    assert old.embedded_in_docker and not old.pushes_images and old.default_exporter == "moby"
    # Docker 26 with the containerd store (Debian 13's build reports version v0.0.0+unknown):
    # BuildKit's containerd worker, which pushes through the image exporter.
    labels = {"executor": "containerd", "containerd.namespace": "moby", "moby.host-gateway-ip": "<nil>"}
    new = capabilities_of(
        [_worker("vddaq664", **labels)], DaemonInfo("", "v0.0.0+unknown", ""), via_docker=True
    )
    assert new.embedded_in_docker and new.pushes_images
    assert "registry" in new.cache_exports and "image" in new.exporters
    # Docker 26 on the classic store (overlay2): no containerd worker, same as 20.10.
    classic = capabilities_of(
        [_worker("moby", executor="oci", **{"moby.host-gateway-ip": "x"})], None, via_docker=True
    )
    assert not classic.pushes_images
    # A standalone buildkitd, whatever its executor.
    alone = capabilities_of([_worker("w1", executor="oci")], None, via_docker=False)
    assert not alone.embedded_in_docker and alone.pushes_images


def test_copy_link_comes_from_the_info_answer_or_the_probe() -> None:
    moby = [_worker("moby", executor="oci")]
    # A daemon that answers Info (BuildKit 0.11+) has a frontend with COPY --link (0.10+).
    assert capabilities_of(moby, DaemonInfo("", "v0.0.0+unknown", ""), via_docker=True).copy_link
    # Without Info the probe solve decides: Docker 20.10's frontend refuses the flag.
    assert not capabilities_of(moby, None, via_docker=True, copy_link=False).copy_link
    assert capabilities_of(moby, None, via_docker=True, copy_link=True).copy_link


CONTAINERD = frozenset({"moby", "image", "local", "tar"})


@pytest.mark.parametrize(
    ("exporters", "version", "epoch"),
    [
        (CONTAINERD, "v0.0.0+unknown", REPRODUCIBLE_EPOCH),  # Docker 26, containerd store (Debian's)
        (frozenset({"image", "oci"}), "v0.13.2", REPRODUCIBLE_EPOCH),  # buildkitd 0.13
        (frozenset({"image", "oci"}), "v0.12.5", None),  # buildkitd before rewrite-timestamp
        (frozenset({"moby", "local", "tar"}), "v0.13.2", None),  # classic store: only moby, unpacks
        (frozenset({"moby", "local", "tar"}), None, None),  # Docker 20.10
        (frozenset({"image", "oci"}), None, None),  # buildkitd before the Info RPC (< 0.11)
    ],
)
def test_reproducible_epoch_needs_the_image_exporter_and_rewrite_timestamp(
    exporters: frozenset[str], version: str | None, epoch: int | None
) -> None:
    assert reproducible_epoch(exporters, version) == epoch


def test_a_reproducible_push_fixes_timestamps_and_drops_the_inline_cache() -> None:
    t = targets("localhost:5000/layerkit", H, {"base": B})[0]
    args = solve_args(t, embedded=False, cache_from=[], network="none", push=True,
                      registry_caches=[t.cache_ref], export_cache=True, epoch=315532800)  # fmt: skip
    assert args.frontend_attrs["build-arg:SOURCE_DATE_EPOCH"] == "315532800"
    assert args.exporter == "image"
    assert args.exporter_attrs["rewrite-timestamp"] == "true" and args.exporter_attrs["push"] == "true"
    # Inline cache records carry build times into the config; the registry cache stays, in
    # zstd: every layer the image exporter makes is rewritten, so no image reuses its blobs.
    assert args.cache_exports == (("registry", {"ref": t.cache_ref, "mode": "max", "compression": "zstd"}),)
    # Without rewrite-timestamp an image reuses the cache's blobs: they stay gzip (the default).
    plain = solve_args(t, embedded=False, cache_from=[], network="none", push=True,
                       registry_caches=[t.cache_ref], export_cache=True)  # fmt: skip
    assert [a for k, a in plain.cache_exports if k == "registry"] == [{"ref": t.cache_ref, "mode": "max"}]


def test_a_reproducible_build_into_dockerd_uses_the_image_exporter_by_canonical_names() -> None:
    # dockerd's moby exporter unpacks, which BuildKit refuses with rewrite-timestamp.
    t = Target(None, H, "team/layerkit", ("demo-1",))
    args = solve_args(t, embedded=True, cache_from=["r/a:1"], network="host", push=False, epoch=1)
    assert args.exporter == "image"
    assert args.exporter_attrs == {
        "name": f"docker.io/team/layerkit:{H},docker.io/team/layerkit:demo-1",
        "rewrite-timestamp": "true",
    }
    assert args.cache_exports == () and args.frontend_attrs["cache-from"] == "r/a:1"
    bare = solve_args(Target(None, H, "layerkit"), embedded=True, cache_from=[], network="host",
                      push=False, epoch=1)  # fmt: skip
    assert bare.exporter_attrs["name"] == f"docker.io/library/layerkit:{H}"
    # Not published: no exporter at all, so no timestamp rewrite either.
    unpublished = solve_args(
        t, embedded=True, cache_from=[], network="host", push=False, epoch=1, publish=False
    )
    assert (unpublished.exporter, unpublished.exporter_attrs) == ("", {})
