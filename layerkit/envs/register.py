"""Which version a registration gets, or which existing version it is.

- an environment identical (same hash) to a registered version of the name is that version:
  nothing new is written;
- the spec's `version`, when set, must be new or hold the same hash (else: bump it);
- otherwise the next integer after the highest integer version (1 for a new name);
- environments without a name go under `anonymous`, versioned by their hash.

Two machines registering the same name at the same moment may both pick the next integer;
the registry has no compare-and-set, so the later push wins that tag (its hash tag still
finds it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from layerkit.envs.models import ANONYMOUS, EnvRecord, check_version
from layerkit.envs.store import EnvStore
from layerkit.errors import Position, RegistryError, RegistryUnreachable, SpecError


@dataclass(frozen=True)
class Registered:
    record: EnvRecord
    reused: bool  # an identical environment was registered already: nothing was written
    store: str  # <host>/<path>/<name>, where the versions live
    warnings: tuple[str, ...] = ()


def _same_name(record: EnvRecord, name: str | None, store: EnvStore) -> None:
    if record.name != name:
        raise SpecError(
            f"environment name {name or ANONYMOUS!r} is stored as {store.loc.repo(name or ANONYMOUS)}, "
            f"which holds environment {record.name or ANONYMOUS!r} already; rename one of them"
        )


def _next_version(
    store: EnvStore, name: str | None, env_hash: str, wanted: str | None, where: Position | None
) -> tuple[str, EnvRecord | None]:
    """The version to write, or an existing record with this hash under the wanted version."""
    key = name or ANONYMOUS
    versions = store.registry_versions(key)
    if versions:
        _same_name(store.fetch(key, versions[-1]) or _missing(store, key, versions[-1]), name, store)
    if name is None:
        version = env_hash[:12] if env_hash[:12] not in versions else env_hash
        return version, None
    if wanted is not None:
        check_version(wanted, f"{where}: " if where else "")
        if wanted not in versions:
            return wanted, None
        held = store.fetch(key, wanted) or _missing(store, key, wanted)
        if held.hash == env_hash:
            return wanted, held
        raise SpecError(
            f"{name}@{wanted} is registered already with another environment (hash {held.hash[:12]}); "
            "bump `version:` in the spec, or remove it to get the next number",
            where,
        )
    numbers = [int(v) for v in versions if v.isdigit()]
    return str(max(numbers, default=0) + 1), None


def _missing(store: EnvStore, name: str, version: str) -> EnvRecord:
    raise RegistryError(f"{store.loc.host}/{store.loc.repo(name)}:{version} vanished while registering")


def register(
    store: EnvStore,
    make: Callable[[str], EnvRecord],
    *,
    name: str | None,
    env_hash: str,
    wanted: str | None,
    where: Position | None = None,
) -> Registered:
    """`make(version)` builds the record once the version is known."""
    key = name or ANONYMOUS
    repo = f"{store.loc.host}/{store.loc.repo(key)}"
    warnings: list[str] = []
    try:
        same = store.find_hash(key, env_hash)
        if same is not None:
            _same_name(same, name, store)
            if wanted is not None and wanted != same.version:
                warnings.append(
                    f"warning: identical to {same.ref} (hash {env_hash[:12]}): that version is reused; "
                    f"version {wanted} was not registered"
                )
            return Registered(same, True, repo, tuple(warnings))
        version, held = _next_version(store, name, env_hash, wanted, where)
        if held is not None:
            return Registered(held, True, repo, tuple(warnings))
        record = make(version)
        store.put(record)
    except RegistryUnreachable as exc:
        raise RegistryUnreachable(
            f"{exc.message}; `env register` writes to the registry, so it needs it "
            "(the local index is only a cache): start it or pass --registry"
        ) from None
    except RegistryError as exc:
        raise RegistryError(f"{exc.message}{store.hint}") from None
    return Registered(record, False, repo, tuple(warnings))
