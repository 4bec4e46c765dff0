"""Semantic checks on a merged spec, and the choice of catalog base it implies.

Errors raise SpecError at the file:line:col of the offending value; warnings (unpinned
packages, moving tags) are returned for the CLI to print on stderr.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from layerkit.errors import SpecError
from layerkit.spec import matchspec as M
from layerkit.spec import pip as P
from layerkit.spec import servecheck
from layerkit.spec import values as V
from layerkit.spec.catalog import Catalog, CatalogImage, load_catalog
from layerkit.spec.gpu import check_named_base, cuda_of
from layerkit.spec.imageref import is_address, is_digest, is_repository_path, parse_image_ref
from layerkit.spec.implied import DEFAULT_FLAVOUR, PIP, adds_pip, implied
from layerkit.spec.merge import Resolved
from layerkit.spec.models import Base, Features
from layerkit.spec.platforms import check_platforms, serves

CURATED_PREFIX = "layerkit-"  # names of environments shipped with layerkit
MIN_PYTHON = Version("3.5")
MIN_CONDA = Version("4.5")
MIN_DISTRO = {"ubuntu": Version("16.04"), "debian": Version("9")}


@dataclass(frozen=True)
class Checked:
    resolved: Resolved
    image: CatalogImage | None  # the catalog base, when the base is one
    warnings: tuple[str, ...]
    # The Python spec added to conda.dependencies because no dependency names python at all
    # (spec/implied.py): "python", for the solver to pick; None on a base of the user's.
    injected_python: str | None = None

    @property
    def cuda(self) -> str | None:
        """The CUDA the environment targets: features.gpu, else its catalog base (spec/gpu.py)."""
        return cuda_of(self.resolved.spec, self.image)


def _v(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _select(r: Resolved, cat: Catalog) -> CatalogImage | None:
    spec, base = r.spec, r.spec.base
    feats = spec.features or Features()
    gpu = feats.gpu
    if base and base.flavour:
        image = cat.get(base.flavour)
        if image is None:
            hint = difflib.get_close_matches(base.flavour, [i.id for i in cat.images], n=1)
            tip = f"; did you mean '{hint[0]}'?" if hint else "; see `layerkit flavours`"
            raise SpecError(f"unknown base flavour '{base.flavour}'{tip}", r.loc(("base", "flavour")))
        return image
    if base and base.image:
        return cat.by_ref(base.image)
    if base and (base.dockerfile or base.dockerfile_file):
        return None

    def fits(i: CatalogImage) -> bool:
        want_cuda = gpu.cuda if gpu else None
        if (want_cuda is None) != (i.cuda is None):
            return False
        if gpu and not all(
            w is None or (h is not None and (h == w or h.startswith(w + ".")))
            for w, h in ((gpu.cuda, i.cuda), (gpu.cudnn, i.cudnn), (gpu.nccl, i.nccl))
        ):
            return False
        if (feats.mpi or None) != (i.mpi.kind if i.mpi else None):
            return False
        if feats.onnxruntime != i.onnxruntime:
            return False
        return not (base and base.distro and i.distro.tag != base.distro)

    if not (gpu or feats.mpi or feats.onnxruntime or (base and base.distro)):
        # Nothing narrows the choice: the default stays put when the catalog gains a newer distro.
        return cat.get(DEFAULT_FLAVOUR)
    found = [i for i in cat.images if fits(i)]
    if not found:
        want = feats.model_dump(exclude_none=True)
        if base and base.distro:
            want["distro"] = base.distro
        raise SpecError(
            f"no catalog base matches {want}; pick one with base.flavour (see `layerkit flavours`)",
            r.loc(("features",)) if spec.features else r.loc(("base",)),
        )
    # Those with a variant for each of the spec's platforms, when any has; newest distro first,
    # then id, so the choice is stable.
    found = [i for i in found if serves(i, spec.platforms or ())] or found
    found.sort(key=lambda i: i.id)
    found.sort(key=lambda i: _v(i.distro.version) or Version("0"), reverse=True)
    return found[0]


def _check_values(r: Resolved, warn: list[str]) -> None:
    s = r.spec

    def bad(key: tuple[str | int, ...], problem: str | None) -> None:
        if problem:
            raise SpecError(f"{'.'.join(map(str, key))}: {problem}", r.loc(key))

    if s.name and s.name.startswith(CURATED_PREFIX) and not r.root.source.startswith("builtin:"):
        bad(("name",), f"the prefix '{CURATED_PREFIX}' is reserved for curated environments; rename it")
    for key in ("name", "version", "description"):
        value = getattr(s, key)
        if value is not None:
            bad((key,), V.no_control(value) if key != "description" else None)
    if s.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", s.name):
        bad(("name",), "use letters, digits, '.', '_' and '-' (at most 128)")
    if s.version is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+:-]{0,127}", s.version):
        bad(("version",), "use letters, digits, '.', '_', '+', ':' and '-'")
    b = s.base
    if b:
        if b.image is not None:
            ref = parse_image_ref(b.image)
            bad(("base", "image"), None if ref else f"'{b.image}' is not a valid image reference")
            if ref and not ref.tag and not ref.digest:
                warn.append(
                    f"{r.loc(('base', 'image'))}: warning: '{b.image}' has no tag and means ':latest'"
                )
            elif ref and ref.tag == "latest" and not ref.digest:
                warn.append(f"{r.loc(('base', 'image'))}: warning: ':latest' moves; pin a tag or a digest")
        if b.registry is not None:
            for key in ("username_env", "password_env"):
                value = getattr(b.registry, key)
                if value is not None and not V.matches(V.ENV_NAME, value):
                    bad(
                        ("base", "registry", key),
                        "must be the NAME of an environment variable, not a credential",
                    )
            if b.registry.address is not None and not is_address(b.registry.address):
                bad(("base", "registry", "address"), "must be host[:port][/path]")
        if b.context is not None:
            if b.dockerfile_file is None:
                bad(
                    ("base", "context"), "is the folder a base.dockerfile_file reads; set dockerfile_file too"
                )
            bad(("base", "context"), V.no_control(b.context))
        if b.digest is not None and not is_digest(b.digest):
            bad(("base", "digest"), "must be 'sha256:' followed by 64 hex digits")
        if b.distro is not None and not re.fullmatch(r"(ubuntu|debian)[0-9.]+", b.distro):
            bad(("base", "distro"), "must look like 'ubuntu22.04' or 'debian12'")
    c = s.conda
    if c and c.installer_image is not None:
        ref = parse_image_ref(c.installer_image)
        bad(
            ("conda", "installer_image"),
            None if ref else f"'{c.installer_image}' is not a valid image reference",
        )
    if c:
        for i, ch in enumerate(c.channels or ()):
            bad(("conda", "channels", i), V.channel(ch))
        if c.channels and not M.channels_of(c)[0]:
            bad(("conda", "channels", 0), "only 'nodefaults' is listed, which removes every channel: add one")
        for i, dep in enumerate(c.dependencies or ()):
            bad(("conda", "dependencies", i), V.conda_spec(dep))
            if not V.is_pinned_conda(dep):
                warn.append(f"{r.loc(('conda', 'dependencies', i))}: warning: '{dep}' is unpinned; lock it")
        seen: dict[str, int] = {}
        for i, dep in enumerate(c.pip or ()):
            bad(("conda", "pip", i), V.pip_spec(dep))
            if not V.is_pinned_pip(dep):
                warn.append(f"{r.loc(('conda', 'pip', i))}: warning: '{dep}' is unpinned; lock it")
            opt = P.option(dep)
            if opt and not P.OPTIONS[opt[0]][2]:
                if opt[0] in seen:
                    bad(("conda", "pip", i), f"{opt[0]} is already set (item {seen[opt[0]]}); pip takes one")
                seen[opt[0]] = i
    for i, pkg in enumerate(s.apt or ()):
        ok = V.matches(V.APT_PACKAGE, pkg)
        bad(("apt", i), None if ok else f"'{pkg}' is not an apt package name (name or name=version)")
    for i, step in enumerate(s.steps or ()):
        if isinstance(step.run, str):
            bad(("steps", i, "run"), V.shell_line(step.run))
            if step.run.lstrip().startswith("--"):
                # RUN flags: --mount=type=secret would hand a step the build's credentials.
                bad(("steps", i, "run"), "RUN flags (--mount, --network, ...) are not allowed in a step")
        else:
            if not step.run:
                bad(("steps", i, "run"), "an exec-form command needs at least one word")
            for j, word in enumerate(step.run):
                bad(("steps", i, "run", j), V.no_control(word))
    for k, value in (s.env or {}).items():
        bad(("env", k), None if V.matches(V.ENV_NAME, k) else f"'{k}' is not a valid variable name")
        bad(("env", k), V.no_control(value))
    rt = s.runtime
    if rt:
        if rt.user is not None and not V.matches(V.USER_NAME, rt.user):
            bad(("runtime", "user"), "must be a lowercase user name (e.g. 'app')")
        for key in ("workdir", "python"):
            value = getattr(rt, key)
            if value is not None and not V.matches(V.ABS_PATH, value) and key == "workdir":
                bad(("runtime", key), "must be an absolute path of [A-Za-z0-9._/+@-]")
            if value is not None and key == "python":
                bad(("runtime", key), V.no_control(value) or (None if " " not in value else "no spaces"))
        if rt.python is not None and not s.user_managed:
            bad(("runtime", "python"), "names a user-managed image's interpreter; a managed environment "
                "runs layerkit's own: remove it, or set user_managed: true")  # fmt: skip
        if rt.shm_size is not None and not V.matches(V.SHM_SIZE, rt.shm_size):
            bad(("runtime", "shm_size"), "must be a size such as '2g' or '512m'")
    reg = s.registry
    if reg:
        for key in ("username_env", "password_env"):
            value = getattr(reg, key)
            if value is not None and not V.matches(V.ENV_NAME, value):
                bad(("registry", key), "must be the NAME of an environment variable, not a credential")
        if reg.address is not None and not is_address(reg.address):
            bad(("registry", "address"), "must be host[:port][/path]")
        if reg.repository is not None and not is_repository_path(reg.repository):
            bad(("registry", "repository"), "must be a lowercase repository path")
    m = s.mirrors
    if m:
        for key in ("channel_alias", "pypi_index"):
            value = getattr(m, key)
            bad(("mirrors", key), None if value is None or V.matches(V.URL, value) else "must be a URL")
        for k, value in (m.channels or {}).items():
            bad(("mirrors", "channels", k), None if V.matches(V.URL, value) else "must be a URL")
        if m.base_registry is not None and not is_address(m.base_registry):
            bad(("mirrors", "base_registry"), "must be host[:port][/path]")


def _check_base(r: Resolved, image: CatalogImage | None, cat: Catalog) -> None:
    s = r.spec
    feats = s.features or Features()
    # pip alone is installed on the base's own Python (render/blocks/basepip.py); conda needs
    # layerkit's environment.
    if s.user_managed and s.conda and s.conda.dependencies:
        raise SpecError(
            "user_managed images run the base's own Python, so they take no conda dependencies: remove "
            "them (pip packages alone go into a venv of the base's Python) or set user_managed: false",
            r.loc(("conda", "dependencies")),
        )
    distro = image.distro if image else None
    if distro is None and s.base and s.base.image:
        ref = parse_image_ref(s.base.image)
        name = ref.repository.rsplit("/", 1)[-1] if ref else ""
        if ref and name in MIN_DISTRO and ref.tag and _v(ref.tag.split("-")[0]):
            ver = _v(ref.tag.split("-")[0])
            if ver is not None and ver < MIN_DISTRO[name]:
                raise SpecError(
                    f"{name} {ref.tag} is too old: layerkit needs Ubuntu >= 16.04 or Debian >= 9",
                    r.loc(("base", "image")),
                )
    key: tuple[str, ...] = ("base",) if s.base else ("features",)
    if image:
        dv = _v(image.distro.version)
        if dv is None or dv < MIN_DISTRO[image.distro.name]:
            raise SpecError(
                f"base '{image.id}' runs {image.distro.tag}; layerkit needs Ubuntu >= 16.04 or Debian >= 9",
                r.loc(key),
            )
        if image.conda and (_v(image.conda) or Version("0")) < MIN_CONDA:
            raise SpecError(
                f"base '{image.id}' has conda {image.conda}; conda >= 4.5 is required", r.loc(key)
            )
        if (_v(image.python) or Version("0")) < MIN_PYTHON:
            raise SpecError(
                f"base '{image.id}' has Python {image.python}; Python >= 3.5 is required", r.loc(key)
            )
    gpu = feats.gpu
    if gpu and gpu.cuda:
        rule = cat.compat_rule(gpu.cuda)
        assert rule is not None  # _check_features ran first
        if distro is not None and distro.tag not in rule.distros:
            raise SpecError(
                f"CUDA {gpu.cuda} is not available on {distro.tag}; use one of {', '.join(rule.distros)}",
                r.loc(key),
            )
        if image is not None and image.cuda is None:
            raise SpecError(f"base '{image.id}' has no CUDA but features.gpu asks for it", r.loc(key))


def _check_features(r: Resolved, cat: Catalog) -> None:
    feats = r.spec.features or Features()
    if feats.onnxruntime in ("cuda", "tensorrt") and not feats.gpu:
        raise SpecError(
            f"onnxruntime '{feats.onnxruntime}' needs features.gpu", r.loc(("features", "onnxruntime"))
        )
    gpu = feats.gpu
    if gpu:
        if gpu.cuda is None:
            raise SpecError("features.gpu needs a cuda version", r.loc(("features", "gpu")))
        for part in ("cuda", "cudnn", "nccl"):
            value = getattr(gpu, part)
            if value is not None and not re.fullmatch(r"[0-9]+(\.[0-9]+){0,3}", value):
                raise SpecError(
                    f"features.gpu.{part} must be a version such as '12.1' (got {value!r})",
                    r.loc(("features", "gpu", part)),
                )
        rule = cat.compat_rule(gpu.cuda)
        if rule is None:
            known = ", ".join(x.cuda for x in cat.compat)
            raise SpecError(
                f"CUDA {gpu.cuda} is not supported; known: {known}", r.loc(("features", "gpu", "cuda"))
            )
        for part, allowed in (("cudnn", rule.cudnn), ("nccl", rule.nccl)):
            want = getattr(gpu, part)
            if want is not None and not any(
                want == a or want.startswith(a + ".") or a.startswith(want + ".") for a in allowed
            ):
                raise SpecError(
                    f"{part} {want} does not work with CUDA {gpu.cuda}; use one of {', '.join(allowed)}",
                    r.loc(("features", "gpu", part)),
                )


def _check_flavour_provides(r: Resolved, image: CatalogImage) -> None:
    """A flavour picked by name must have what features asks for (by features it is matched)."""
    feats = r.spec.features
    if feats is None:
        return
    if feats.gpu and image.cuda is None:
        raise SpecError(
            f"flavour '{image.id}' has no CUDA but features.gpu asks for it", r.loc(("features", "gpu"))
        )
    for what, want, have in (
        ("mpi", feats.mpi, image.mpi.kind if image.mpi else None),
        ("onnxruntime", feats.onnxruntime, image.onnxruntime),
    ):
        if want is not None and want != have:
            raise SpecError(
                f"flavour '{image.id}' has {what} {have or 'none'} but features.{what} asks for {want}",
                r.loc(("features", what)),
            )


def check(r: Resolved, catalog: Catalog | None = None) -> Checked:
    """Validate a resolved spec; raise SpecError on the first problem, return warnings."""
    cat = catalog or load_catalog()
    b = r.spec.base
    for layer in r.layers:
        lb = layer.spec.base
        if lb:
            sources = [k for k in Base.EXCLUSIVE if getattr(lb, k) is not None]
            if len(sources) > 1:
                raise SpecError(
                    f"base: set only one of image, dockerfile, dockerfile_file, flavour (got {', '.join(sources)})",
                    layer.loc(("base", sources[1])),
                )
    warn: list[str] = list(r.warnings)
    _check_values(r, warn)
    _check_features(r, cat)
    servecheck.check(r, warn)
    spec = r.spec
    if spec.user_managed and not (b and any(getattr(b, k) for k in Base.EXCLUSIVE)):
        raise SpecError("user_managed needs base.image or base.dockerfile", r.loc(("user_managed",)))
    image = _select(r, cat)
    if b and b.flavour and image:
        _check_flavour_provides(r, image)
    if b and (b.flavour or b.image) and image:
        check_named_base(r, image)
    _check_base(r, image, cat)
    check_platforms(r, image, cat, warn)
    injected = implied(r, image, warn)
    return Checked(r, image, tuple(warn), injected)


def effective_dependencies(checked: Checked) -> tuple[str, ...]:
    """Conda dependencies as installed (spec/implied.py): the spec's in the form solvers read
    (matchspec.solver_form), plus `pip` when conda would add it and the injected Python."""
    conda = checked.resolved.spec.conda
    deps = [M.solver_form(d) for d in conda.dependencies or ()] if conda else []
    if adds_pip(conda):
        deps.append(PIP)
    if checked.injected_python:
        deps.append(checked.injected_python)
    return tuple(sorted(deps))
