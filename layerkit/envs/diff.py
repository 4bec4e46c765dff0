"""What changed between two environment records: packages per platform (added, removed,
changed version/build/checksum), the base image, apt packages, env vars, requested specs."""

from __future__ import annotations

from dataclasses import dataclass, field

from layerkit.envs.models import BaseImage, EnvRecord, Package

DIFF_SCHEMA = "layerkit.env-diff/1"


@dataclass(frozen=True)
class Change:
    manager: str
    name: str
    old: Package
    new: Package


@dataclass(frozen=True)
class PlatformDiff:
    added: tuple[Package, ...] = ()
    removed: tuple[Package, ...] = ()
    changed: tuple[Change, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass(frozen=True)
class Added:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


@dataclass(frozen=True)
class EnvDiff:
    old: EnvRecord
    new: EnvRecord
    platforms: dict[str, PlatformDiff] = field(default_factory=dict)  # only platforms that differ
    base: tuple[BaseImage, BaseImage] | None = None
    apt: Added = Added()
    requested: Added = Added()
    env: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # name -> (old, new)

    @property
    def identical(self) -> bool:
        return self.old.hash == self.new.hash

    def to_json(self) -> dict[str, object]:
        def pkg(p: Package) -> dict[str, str]:
            return {"manager": p.manager, "name": p.name, "version": p.version, "build": p.build}

        def side(r: EnvRecord) -> dict[str, object]:
            return {"name": r.name, "version": r.version, "hash": r.hash, "image": r.image}

        return {
            "schema": DIFF_SCHEMA,
            "from": side(self.old),
            "to": side(self.new),
            "identical": self.identical,
            "packages": {
                plat: {
                    "added": [pkg(p) for p in d.added],
                    "removed": [pkg(p) for p in d.removed],
                    "changed": [
                        {
                            "manager": c.manager,
                            "name": c.name,
                            "old": {
                                "version": c.old.version,
                                "build": c.old.build,
                                "checksum": c.old.checksum,
                            },
                            "new": {
                                "version": c.new.version,
                                "build": c.new.build,
                                "checksum": c.new.checksum,
                            },
                        }
                        for c in d.changed
                    ],
                }
                for plat, d in sorted(self.platforms.items())
            },
            "base": {"old": self.base[0].model_dump(), "new": self.base[1].model_dump()}
            if self.base
            else None,
            "apt": {"added": list(self.apt.added), "removed": list(self.apt.removed)},
            "requested": {"added": list(self.requested.added), "removed": list(self.requested.removed)},
            "env": {k: {"old": o, "new": n} for k, (o, n) in sorted(self.env.items())},
        }


def _platform(old: tuple[Package, ...], new: tuple[Package, ...]) -> PlatformDiff:
    a = {(p.manager, p.name): p for p in old}
    b = {(p.manager, p.name): p for p in new}
    changed = tuple(
        Change(k[0], k[1], a[k], b[k])
        for k in sorted(a.keys() & b.keys(), key=lambda k: (k[1], k[0]))
        if (a[k].version, a[k].build, a[k].checksum) != (b[k].version, b[k].build, b[k].checksum)
    )
    order = lambda p: (p.name, p.manager)  # noqa: E731
    return PlatformDiff(
        added=tuple(sorted((b[k] for k in b.keys() - a.keys()), key=order)),
        removed=tuple(sorted((a[k] for k in a.keys() - b.keys()), key=order)),
        changed=changed,
    )


def _sets(old: tuple[str, ...], new: tuple[str, ...]) -> Added:
    return Added(tuple(sorted(set(new) - set(old))), tuple(sorted(set(old) - set(new))))


def diff(old: EnvRecord, new: EnvRecord) -> EnvDiff:
    platforms = {}
    for plat in sorted(old.platforms.keys() | new.platforms.keys()):
        d = _platform(old.platforms.get(plat, ()), new.platforms.get(plat, ()))
        if d:
            platforms[plat] = d
    env = {
        k: (old.env.get(k), new.env.get(k))
        for k in sorted(old.env.keys() | new.env.keys())
        if old.env.get(k) != new.env.get(k)
    }
    return EnvDiff(
        old=old,
        new=new,
        platforms=platforms,
        base=(old.base, new.base) if old.base != new.base else None,
        apt=_sets(old.apt, new.apt),
        requested=_sets(old.requested, new.requested),
        env=env,
    )


def _pkg(p: Package) -> str:
    pip = " (pip)" if p.manager == "pip" else ""
    return f"{p.name} {p.version}{' ' + p.build if p.build else ''}{pip}"


def _base(b: BaseImage) -> str:
    if b.dockerfile_sha256:
        return f"Dockerfile sha256:{b.dockerfile_sha256[:12]}"
    text = f"{b.image}@{b.digest}" if b.digest else str(b.image)
    if b.runtime:
        text += f", runtime {b.runtime}@{b.runtime_digest}" if b.runtime_digest else f", runtime {b.runtime}"
    return text


def format_text(d: EnvDiff) -> str:
    lines = [f"{d.old.ref} -> {d.new.ref}"]
    if d.identical:
        lines.append(f"identical (hash {d.new.hash})")
        return "\n".join(lines) + "\n"
    lines.append(f"hash {d.old.hash[:12]} -> {d.new.hash[:12]}")
    if d.base:
        lines.append(f"base {_base(d.base[0])} -> {_base(d.base[1])}")
    for plat, pd in sorted(d.platforms.items()):
        lines.append(f"{plat}:")
        lines += [f"  + {_pkg(p)}" for p in pd.added]
        lines += [f"  - {_pkg(p)}" for p in pd.removed]
        for c in pd.changed:
            old = f"{c.old.version} {c.old.build}".strip()
            new = f"{c.new.version} {c.new.build}".strip()
            if old == new:  # same version and build, other bytes: a rebuild
                old, new = f"{old} {c.old.checksum[:19]}", f"{new} {c.new.checksum[:19]}"
            lines.append(f"  ~ {c.name}{' (pip)' if c.manager == 'pip' else ''} {old} -> {new}")
    for label, a in (("requested", d.requested), ("apt", d.apt)):
        if a:
            lines.append(
                f"{label}: " + " ".join([*(f"+{x}" for x in a.added), *(f"-{x}" for x in a.removed)])
            )
    for k, (o, n) in sorted(d.env.items()):
        if o is None:
            lines.append(f"env: +{k}={n}")
        elif n is None:
            lines.append(f"env: -{k}")
        else:
            lines.append(f"env: ~{k} {o} -> {n}")
    return "\n".join(lines) + "\n"
