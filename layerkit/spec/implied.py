"""What conda adds to an environment as written, and what layerkit adds: each one a warning.

- no `channels:`: conda's `defaults` (matchspec.channels_of);
- a channel only a channel-qualified spec names (`pytorch::pytorch`): conda adds it after the
  listed channels (matchspec.added_channels);
- bracket words without a value (`nbconvert[execute]`): conda's MatchSpec drops them;
- a `pip:` section without `pip` in the dependencies: conda adds `pip` (conda/env/env.py
  validate_keys: "I'm adding one for you");
- no python at all, on a catalog base: layerkit adds `python` unpinned, so the lock or the
  solve picks the newest Python the packages allow (conda would add none; the env's python is
  the image's `python`), or `python=<flavour's>` when the flavour installs pip wheels of its
  own (ONNX Runtime), which only the flavour's Python is known to take. A base of the user's
  (an image the catalog does not know, a base Dockerfile, user_managed) brings its own
  Python: nothing is added.
"""

from __future__ import annotations

from layerkit.spec import matchspec as M
from layerkit.spec.catalog import CatalogImage
from layerkit.spec.merge import Resolved
from layerkit.spec.models import Conda

DEFAULT_FLAVOUR = "cpu-ubuntu22.04"
PYTHON = "python"  # the spec added when no dependency names python (on a catalog base)
PIP = "pip"


def adds_pip(conda: Conda | None) -> bool:
    """Whether conda would add `pip`: a `pip:` section and no `pip` among the dependencies."""
    if conda is None or not conda.pip:
        return False
    return not any(M.name_of(d) == PIP for d in conda.dependencies or ())


def implied(r: Resolved, image: CatalogImage | None, warn: list[str]) -> str | None:
    """Append the warnings; return the Python spec layerkit adds, if any."""
    spec = r.spec
    if spec.user_managed:
        return None
    conda = spec.conda
    _, implicit = M.channels_of(conda)
    if implicit:
        urls = " and ".join(M.DEFAULT_CHANNELS)
        where = r.loc(("conda",)) if conda else r.root.loc(())
        warn.append(f"{where}: warning: no channels listed, so conda's 'defaults' is used ({urls}); "
                    "list channels to choose")  # fmt: skip
    deps = (conda.dependencies or ()) if conda else ()
    added = set(M.added_channels(conda))
    for i, dep in enumerate(deps):
        p = M.parse(dep)
        where = r.loc(("conda", "dependencies", i))
        if p.channel in added:
            added.discard(p.channel)
            warn.append(f"{where}: warning: '{dep}' names the channel '{p.channel}', which channels: does "
                        "not list; it is searched after the listed ones, as conda does: list it to "
                        "choose its priority")  # fmt: skip
        if p.ignored:
            words = ", ".join(p.ignored)
            warn.append(f"{where}: warning: '{dep}': conda ignores [{words}] (a bracket key without a "
                        f"value; pip-style extras are not conda syntax), so '{p.solver}' is installed; "
                        "list the packages the extra brings to get them")  # fmt: skip
    if adds_pip(conda):
        warn.append(f"{r.loc(('conda', 'pip'))}: warning: a pip section without pip in the dependencies: "
                    "conda adds 'pip', and so does layerkit; list pip to choose its version")  # fmt: skip
    if M.python_spec(deps) is not None or image is None:
        return None  # named; or the user's base brings its Python
    where = r.loc(("conda", "dependencies")) if deps else r.root.loc(())
    if image.pip:  # the flavour's own pip wheels (ONNX Runtime) are built for its Python
        warn.append(f"{where}: warning: no python in the dependencies, so python={image.python} is added: "
                    f"base '{image.id}' installs {', '.join(image.pip)} for it; add a python spec to choose")  # fmt: skip
        return f"{PYTHON}={image.python}"
    warn.append(f"{where}: warning: no python in the dependencies, so 'python' is added for base "
                f"'{image.id}': the lock or the solve picks the newest Python the packages allow; "
                "add a python spec to choose")  # fmt: skip
    return PYTHON
