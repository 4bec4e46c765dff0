"""Delta section of the benchmark (issue 18 §2): bytes an update sends, split env layers against
one env layer. Real dockerd 26 + registry + the air-gapped site, whose channel has a big
CUDA-named package (``libcublas``, BIG_MB of incompressible bytes) and ``tinykit`` 1.0/1.1.

For each of the two layouts (the default split, and ``conda.layers: false``), in a repository
of its own: build and push the env with tinykit 1.0, then with tinykit 1.1 (a one-package
change), and measure
  pushed   the compressed sizes of the layers in the second image's manifest that the first
           one's does not have: the blobs the registry had to receive (it holds the rest);
  pulled   an engine that holds the first image (pulled from the registry into an emptied
           engine) pulls the second: the sizes of the layers its pull progress downloads
           (not "Already exists").
Sizes come from the registry's manifests; nothing is estimated.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIG_MB = 32


def _pull(docker_host: str, image: str, layers: list[tuple[str, int]]) -> int:
    """Bytes of `image`'s layers the engine downloads to pull it (by its pull progress)."""
    import docker

    client = docker.APIClient(base_url=docker_host)
    try:
        repo, tag = image.rsplit(":", 1)
        fetched: set[str] = set()
        for event in client.pull(repo, tag, stream=True, decode=True):
            if event.get("status") in ("Pulling fs layer", "Downloading", "Download complete") and event.get(
                "id"
            ):
                fetched.add(event["id"])
    finally:
        client.close()
    return sum(size for digest, size in dict(layers).items() if digest.split(":", 1)[1][:12] in fetched)


def _layout(tmp: Path, site: Any, svc: Any, layers: bool, log: Callable[[str], None]) -> dict[str, Any]:
    import fixtures_build as fb
    import fixtures_services as fs

    repo = f"bench/delta-{uuid.uuid4().hex[:8]}"
    name = "split" if layers else "single"
    images = []
    for tiny in ("1.0", "1.1"):
        spec = fb.site_spec(
            tmp / f"{name}-{tiny}",
            site,
            svc,
            repo=repo,
            deps=(*fb.DEPS, "libcublas", f"tinykit={tiny}"),
            lock=False,
        )
        if not layers:
            spec.write_text(spec.read_text().replace("conda:\n", "conda:\n  layers: false\n", 1))
        fb.lock_spec(spec)
        log(f"delta: {name} env layers, tinykit {tiny}")
        result, _ = fb.build_spec(spec, svc)
        assert result.pushed, result
        images.append(result.image)
    before, after = (fb.image_layers(svc.registry, image) for image in images)
    log(f"delta: {name}: pull the first image into an emptied engine, then the second")
    fs.empty_engine(svc.docker_host)
    cold_pull = _pull(svc.docker_host, images[0], before)
    update_pull = _pull(svc.docker_host, images[1], after)
    return {
        "layers": len(after),
        # Per blob: an image may list one (empty) layer twice, a registry holds it once.
        "image_bytes": sum(dict(after).values()),
        "pushed_bytes": sum(size for digest, size in dict(after).items() if digest not in dict(before)),
        "pushed_layers": len(dict(after).keys() - dict(before).keys()),
        "pulled_bytes": update_pull,
        "cold_pull_bytes": cold_pull,
    }


def run(tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    import fixtures_build as fb
    import fixtures_services as fs

    log("delta: starting dockerd 26, registry and the air-gapped site with a big package")
    extra = fb.delta_packages(BIG_MB)
    with (
        fs.dockerd_with_registry(engine="26") as svc,
        fb.airgap_site(tmp / "site", extra_packages=extra) as site,
    ):
        split = _layout(tmp / "delta", site, svc, True, log)
        single = _layout(tmp / "delta", site, svc, False, log)
    return {
        "big_mb": BIG_MB,
        "split": split,
        "single": single,
        "pushed_ratio": split["pushed_bytes"] / single["pushed_bytes"],
        "pulled_ratio": split["pulled_bytes"] / single["pulled_bytes"] if single["pulled_bytes"] else None,
    }


def table(d: dict[str, Any]) -> list[str]:
    def row(name: str, x: dict[str, Any]) -> str:
        return (
            f"   {name:<22} {x['layers']:3d} layers, image {x['image_bytes'] / 1e6:7.2f} MB; after the update "
            f"pushed {x['pushed_bytes'] / 1e6:8.3f} MB ({x['pushed_layers']} new layers), "
            f"pulled {x['pulled_bytes'] / 1e6:8.3f} MB (cold pull {x['cold_pull_bytes'] / 1e6:.2f} MB)"
        )

    pulled = f"{d['pulled_ratio']:.4f}" if d["pulled_ratio"] is not None else "n/a"
    return [
        f"6. updates as deltas: a one-package change (tinykit 1.0 -> 1.1) of a locked env with a "
        f"{d['big_mb']} MB CUDA-named package (libcublas), sizes from the registry's manifests",
        row("split env layers", d["split"]),
        row("one env layer", d["single"]),
        f"   split / single: pushed {d['pushed_ratio']:.4f}, pulled {pulled}",
    ]


if __name__ == "__main__":  # this section alone: python3 bench/delta_bench.py [--json]
    import json
    import sys
    import tempfile

    root = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(root), str(root / "tests")]
    with tempfile.TemporaryDirectory(prefix="layerkit-bench-") as d:
        figures = run(Path(d), lambda m: print(f"[bench] {m}", file=sys.stderr, flush=True))
    print(json.dumps(figures, indent=2) if "--json" in sys.argv else "\n".join(table(figures)))
