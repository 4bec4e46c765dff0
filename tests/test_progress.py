"""Step counts of a build's Status stream: one per Dockerfile step, whatever its vertexes."""

from __future__ import annotations

from layerkit.build._proto import buildkit_control_pb2 as control
from layerkit.build.progress import Progress


def _status(*vertexes: tuple[str, str, bool]) -> control.StatusResponse:
    resp = control.StatusResponse()
    for digest, name, cached in vertexes:
        resp.vertexes.add(digest=digest, name=name, cached=cached)
    return resp


def test_a_linked_copy_is_one_step_cached_only_when_both_its_vertexes_are() -> None:
    progress = Progress("quiet")
    progress.phase("image")
    # Names as Docker 26's BuildKit reports them after a base-only change: the copy of the
    # environment is found, laying it over the new base layers (LINK) runs.
    progress(
        _status(
            ("sha256:1", "[internal] load metadata for localhost:5000/debian:bookworm", False),
            ("sha256:2", "[runtime 1/3] FROM docker.io/library/base", False),
            ("sha256:3", "[base 2/2] RUN apt-get update", False),
            ("sha256:4", "[env 2/3] RUN python3 -m venv /opt/installer", True),
            ("sha256:5", "[runtime 2/3] COPY --link --from=env /opt/env /opt/env", True),
            ("sha256:6", "[runtime 2/3] LINK COPY --link --from=env /opt/env /opt/env", False),
            ("sha256:7", "[runtime 3/3] RUN mlkit 12", False),
        )
    )
    assert progress.counts("image") == (1, 4)
    progress(_status(("sha256:6", "[runtime 2/3] LINK COPY --link --from=env /opt/env /opt/env", True)))
    assert progress.counts("image") == (2, 4)
    assert progress.counts("env") == (0, 0)
