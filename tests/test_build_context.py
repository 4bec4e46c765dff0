"""A base Dockerfile's build context, end to end on a real dockerd (BuildKit 0.8) and registry:
an Azure ML v2 environment whose `build.path` Dockerfile COPYs a requirements.txt and a script
builds, the files are sent through FileSync (.dockerignore honoured, modes kept), and changing
a file the Dockerfile reads changes the hash."""

from __future__ import annotations

import uuid
from pathlib import Path

import docker
import pytest
from fixtures_services import Services, container_output

from layerkit import api
from layerkit.build.builder import BuildOptions

pytestmark = pytest.mark.integration


def test_a_v2_build_path_context_is_sent_and_hashed(tmp_path: Path, services: Services) -> None:
    ctx = tmp_path / "docker-context"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {services.base_image}\nCOPY requirements.txt /opt/app/\nCOPY bin/ /opt/app/bin/\n"
        "RUN /opt/app/bin/setup.sh\n"
    )
    (ctx / "requirements.txt").write_text("six==1.16.0\n")
    (ctx / "requirements.txt").chmod(0o640)  # COPY keeps a file's permission bits, as docker build does
    (ctx / "bin").mkdir()
    script = ctx / "bin" / "setup.sh"
    script.write_text("#!/bin/sh\nwc -l < /opt/app/requirements.txt > /opt/app/lines\n")
    script.chmod(0o755)
    (ctx / "secret.env").write_text("TOKEN=never-sent\n")
    (ctx / ".dockerignore").write_text("*.env\n")
    env = tmp_path / "env.yml"
    env.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
        "name: ctx-env\nbuild:\n  path: docker-context\n"
    )
    repo = f"ctx-{uuid.uuid4().hex[:8]}"
    spec = tmp_path / "layerkit.yaml"
    spec.write_text(f"extends: [env.yml]\nregistry:\n  address: {services.registry}\n  repository: {repo}\n")
    opts = BuildOptions(addr=f"docker://{services.docker_host}", network="host")
    result = api.build(spec, options=opts)
    client = docker.DockerClient(base_url=services.docker_host)
    out = container_output(
        client,
        result.image,
        [
            "sh",
            "-c",
            "cat /opt/app/requirements.txt /opt/app/lines; ls /opt/app; stat -c %a /opt/app/requirements.txt",
        ],
        user="0",  # the 0640 file is root's, as `docker build` would leave it
    )
    assert out.decode() == "six==1.16.0\n1\nbin\nlines\nrequirements.txt\n640\n"
    before = api.hash_spec(spec).hash
    (ctx / "secret.env").write_text("TOKEN=changed\n")  # ignored: not in the hash
    assert api.hash_spec(spec).hash == before
    (ctx / "requirements.txt").write_text("six==1.17.0\n")
    assert api.hash_spec(spec).hash != before
