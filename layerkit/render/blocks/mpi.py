"""MPI built from the catalog's source tarball (checksum-checked) in the base stage, under
/opt/mpi; a runtime image of its own gets that folder copied, not rebuilt."""

from __future__ import annotations

from layerkit.render.blocks.dockerfile import Block, Copy, Workdir, run
from layerkit.spec.catalog import Mpi

MPI_PREFIX = "/opt/mpi"
MPI_BIN = {
    "openmpi": "/opt/mpi/bin",
    "intelmpi": "/opt/mpi/compilers_and_libraries_2018.3.222/linux/mpi/intel64/bin",
}
MPI_BUILD_APT = {
    "openmpi": ("build-essential", "bzip2", "ca-certificates", "wget"),
    "intelmpi": ("ca-certificates", "cpio", "wget"),
}


def mpi(mpi: Mpi | None, runtime_image: bool) -> Block:
    """`mpi` when the catalog builds it (it has a source); `runtime_image`: the flavour runs on
    an image of its own, which takes /opt/mpi from the base stage."""
    if mpi is None or mpi.source is None:
        return Block()
    url, sha256 = mpi.source.url, mpi.source.sha256
    if mpi.kind == "openmpi":
        where = "/tmp/openmpi"
        build = run(
            f'wget -q -O openmpi.tar.bz2 "{url}"',
            f'echo "{sha256}  openmpi.tar.bz2" | sha256sum -c -',
            "tar -xjf openmpi.tar.bz2 --strip-components=1",
            f"./configure --prefix={MPI_PREFIX} --disable-getpwuid --enable-orterun-prefix-by-default",
            'make -j"$(nproc)" install',
            f"rm -rf {where}",
        )
    else:
        where = "/tmp/intelmpi"
        build = run(
            f'wget -q -O intelmpi.tgz "{url}"',
            f'echo "{sha256}  intelmpi.tgz" | sha256sum -c -',
            "tar -xzf intelmpi.tgz --strip-components=1",
            "sed -i -e 's|^ACCEPT_EULA=decline|ACCEPT_EULA=accept|' "
            f"-e 's|^PSET_INSTALL_DIR=.*|PSET_INSTALL_DIR={MPI_PREFIX}|' silent.cfg",
            "./install.sh --silent silent.cfg",
            f"rm -rf {where}",
        )
    # Linked: a base change then re-copies nothing (see blocks/files.py).
    copy = Copy((MPI_PREFIX,), MPI_PREFIX, from_stage="base", link=True)
    return Block(
        base=(Workdir(where), build),
        runtime=(copy,) if runtime_image else (),
        build_apt=MPI_BUILD_APT[mpi.kind],
    )
