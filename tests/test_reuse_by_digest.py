"""builder._reuse and _describe act on the digests the Decision carries, never on a tag asked
again (issue 15 §5: a tag can move between the gate's verify and the copy). Pure logic: a fake
registry client that records what it is asked; tests/test_signing_build.py builds for real."""

from __future__ import annotations

from dataclasses import dataclass, field

from test_decisions import BASE, ENV, G_BASE, G_ENV, G_IMAGE, GLOBAL, IMAGE, H, dg, layout

from layerkit.build.builder import BuildResult, _describe, _reuse
from layerkit.build.decisions import decide
from layerkit.build.lookup import Registries
from layerkit.build.options import BuildOptions
from layerkit.build.registry import ImageRef, ManifestInfo


@dataclass
class Recorder:
    """HEADs answered for ``refs`` (each its own digest) until ``frozen``: after the decision,
    any HEAD is a second look at a tag, which is the defect."""

    refs: set[str]
    frozen: bool = False
    copied: list[tuple[ImageRef, ImageRef]] = field(default_factory=list)
    sized: list[ImageRef] = field(default_factory=list)

    def head_manifest(self, ref: ImageRef) -> ManifestInfo | None:
        assert not self.frozen, f"asked for {ref} again after the decision"
        text = f"{ref.registry}/{ref.repository}:{ref.tag}"
        return (
            ManifestInfo(dg(text), "application/vnd.oci.image.manifest.v1+json", 1)
            if text in self.refs
            else None
        )

    def copy(self, src: ImageRef, dst: ImageRef) -> str:
        self.copied.append((src, dst))
        return str(src.digest)

    def image_size(self, ref: ImageRef) -> int:
        self.sized.append(ref)
        return 42


def _run(refs: set[str], lay_globals: tuple[str, ...] = ()) -> tuple[BuildResult, Recorder]:
    client = Recorder(refs)
    registries = Registries(client, print)  # type: ignore[arg-type]
    decision = decide(layout(globals_=lay_globals), registries, BuildOptions(), print)
    client.frozen = True
    result = BuildResult(hash=H, image=IMAGE, action="built", decision=decision)
    _reuse(decision, registries, result)
    _describe(result, registries, True)
    return result, client


def pinned(ref: str) -> ImageRef:
    image = ImageRef.parse(ref)
    return ImageRef(image.registry, image.repository, None, dg(ref))


def test_a_copy_fetches_each_image_by_the_digest_decided_and_tags_the_destination() -> None:
    result, client = _run({G_IMAGE, G_BASE, G_ENV}, (GLOBAL,))
    assert result.action == "copied" and result.digest == dg(G_IMAGE)
    assert client.copied == [
        (pinned(G_BASE), ImageRef.parse(BASE)),
        (pinned(G_ENV), ImageRef.parse(ENV)),
        (pinned(G_IMAGE), ImageRef.parse(IMAGE)),
    ]
    image = ImageRef.parse(IMAGE)
    assert client.sized == [ImageRef(image.registry, image.repository, None, dg(G_IMAGE))]


def test_found_describes_the_digest_decided() -> None:
    ws = {IMAGE, BASE, ENV}
    result, client = _run(ws)
    assert (result.action, result.digest, result.size) == ("found", dg(IMAGE), 42)
    assert client.copied == [] and client.sized == [pinned(IMAGE)]
