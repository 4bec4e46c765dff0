"""The Dockerfile sent to an engine whose frontend refuses `COPY --link` (Docker 20.10):
the rendered one, every layerkit COPY --link without the flag, nothing else changed."""

from __future__ import annotations

from layerkit import api
from layerkit.build.compat import without_copy_link
from layerkit.render.blocks.dockerfile import Copy
from layerkit.render.instructions import instructions
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import check

# MPI built in the devel image, copied with the environment into the runtime image.
MPI_RUNTIME = """\
name: mpi
base: {flavour: openmpi4.1.6-cuda12.8-cudnn9-ubuntu22.04}
features: {gpu: {cuda: '12.8'}}
conda: {dependencies: [numpy=1.26]}
"""


def test_the_rendered_dockerfile_loses_only_its_link_flags() -> None:
    r = api.render(check(resolve(load_text(MPI_RUNTIME, "mpi.yaml"))))
    rendered = r.dockerfile
    linked = [i.text for i in instructions(rendered) if i.text.startswith("COPY --link ")]
    assert linked == ["COPY --link --from=base /opt/mpi /opt/mpi", "COPY --link --from=env /opt/env /opt/env"]
    text, removed = without_copy_link(rendered)
    assert removed == 2 and "--link" not in text
    assert text == rendered.replace("COPY --link --from=", "COPY --from=")
    # The render plan decided which copies link (those into /opt); the copies into /tmp do not.
    copies = [i for s in r.plan.stages for i in s.instructions if isinstance(i, Copy)]
    assert {(c.from_stage, c.sources, c.dest) for c in copies if c.link} == {
        ("base", ("/opt/mpi",), "/opt/mpi"),
        ("env", ("/opt/env",), "/opt/env"),
    }
    unlinked = [c for c in copies if not c.link]
    assert unlinked and all(c.dest == "./" and c.from_stage is None for c in unlinked)


def test_only_copy_and_add_flags_go_not_words_elsewhere() -> None:
    dockerfile = (
        "FROM a AS b\n"
        "# COPY --link x /x (a comment)\n"
        "COPY --link=true --chown=1:1 x /x\n"
        "ADD \\\n  --link y /y\n"
        "ONBUILD COPY --link z /z\n"
        "COPY --chown=1:1 -- --link /w\n"
        "RUN echo --link \\\n  && true\n"
        "RUN <<EOF\nCOPY --link not-an-instruction /n\nEOF\n"
        "COPY --from=b --link\\\n q /q\n"
    )
    text, removed = without_copy_link(dockerfile)
    assert removed == 4
    assert text == (
        "FROM a AS b\n"
        "# COPY --link x /x (a comment)\n"
        "COPY --chown=1:1 x /x\n"
        "ADD \\\n  y /y\n"
        "ONBUILD COPY z /z\n"
        "COPY --chown=1:1 -- --link /w\n"
        "RUN echo --link \\\n  && true\n"
        "RUN <<EOF\nCOPY --link not-an-instruction /n\nEOF\n"
        "COPY --from=b \\\n q /q\n"
    )


def test_a_dockerfile_without_link_is_returned_as_it_was() -> None:
    dockerfile = "FROM a\nCOPY x /x\n"
    assert without_copy_link(dockerfile) == (dockerfile, 0)


def test_a_comment_inside_a_continuation_keeps_its_words_and_the_flag_goes() -> None:
    # Review finding: the word was taken out of the comment and the real flag stayed.
    dockerfile = "FROM a\nCOPY \\\n# uses --link\n--link x /x\n"
    assert without_copy_link(dockerfile) == ("FROM a\nCOPY \\\n# uses --link\nx /x\n", 1)
