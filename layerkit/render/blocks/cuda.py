"""CUDA from NVIDIA's apt repositories (render/cuda_apt.py's plan) in the base stage."""

from __future__ import annotations

from layerkit.render.blocks.dockerfile import Block, Command, Env, Run
from layerkit.render.blocks.system import APT_LEFTOVERS
from layerkit.render.cuda_apt import CudaAptPlan

INSTALL = "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends"


def cuda(plan: CudaAptPlan | None) -> Block:
    """Each key is fetched, then only the key with the catalog's full fingerprint is exported
    into its own keyring: a different or extra key in the download is never trusted."""
    if plan is None:
        return Block()
    keys: list[str] = []
    for s in plan.sources:
        keys += [
            f'wget -q -O "$GNUPGHOME/key.pub" "{s.key_url}"',
            'gpg --batch --quiet --import "$GNUPGHOME/key.pub"',
            f"gpg --batch --export {s.fingerprint} > {s.keyring}",
            f"test -s {s.keyring}",
            f'echo "deb [signed-by={s.keyring}] {s.url} /" > {s.list_file}',
        ]
    commands = (
        "apt-get update",
        " ".join((INSTALL, *plan.bootstrap)),
        'GNUPGHOME="$(mktemp -d)"',
        "export GNUPGHOME",
        *keys,
        "apt-get update",
    )
    after = (
        f"ln -s {plan.toolkit} /usr/local/cuda",
        "printf '%s\\n' /usr/local/nvidia/lib /usr/local/nvidia/lib64 > /etc/ld.so.conf.d/nvidia.conf",
        'rm -rf "$GNUPGHOME"',
        "apt-get clean",
        APT_LEFTOVERS,
    )
    install = Run(
        (*(Command(c) for c in commands), Command(INSTALL, plan.packages), *(Command(c) for c in after))
    )
    return Block(base=(install, Env(plan.env)))
