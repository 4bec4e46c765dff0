"""The inference image's render and hash (render/inference.py, render/nginxconf.py,
hashing/inference.py): goldens for key auth on and off and with models (linted by hadolint
with the other goldens), what the hash covers, and the values that must not reach nginx."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from layerkit import api
from layerkit.deploy import keys
from layerkit.errors import SpecError

HERE = Path(__file__).parent
SPECS = HERE / "inference"
GOLDEN = HERE / "golden"
CASES = ("key", "noauth", "conda")


def _golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.write_text(text)
    assert path.exists(), f"no golden file {name}; run pytest --update-golden"
    assert text == path.read_text(), f"{name} differs; review and run pytest --update-golden"


@pytest.mark.parametrize("case", CASES)
def test_inference_golden(case: str, update_golden: bool) -> None:
    r = api.render_inference(SPECS / f"{case}.yaml", auto_lock=False)
    _golden(f"inference-{case}.Dockerfile", r.dockerfile, update_golden)
    _golden(f"inference-{case}.nginx.conf", r.files["inference/nginx.conf"], update_golden)


def test_the_environment_is_unchanged_by_serve(tmp_path: Path) -> None:
    """Same env hash and Dockerfile prefix with and without the serve: section."""
    spec = _copy(tmp_path)
    env = api.render(spec, auto_lock=False)
    inf = api.render_inference(spec, auto_lock=False)
    text = spec.read_text()
    spec.write_text(text[: text.index("serve:")])
    bare = api.render(spec, auto_lock=False)
    assert env.hash.hash == bare.hash.hash == inf.env_hash
    assert inf.hash.stages == env.hash.stages
    assert inf.dockerfile.startswith(env.dockerfile)
    assert inf.hash.hash != env.hash.hash


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(SPECS, tmp_path / "s")
    return tmp_path / "s" / "key.yaml"


def test_hash_covers_source_models_and_stage_but_not_ignored_files(tmp_path: Path) -> None:
    spec = _copy(tmp_path)
    root = spec.parent

    def h() -> str:
        return api.render_inference(spec, auto_lock=False).hash.hash

    first = h()
    assert h() == first  # deterministic
    (root / "src" / "more.tmp").write_text("ignored by .amlignore")
    assert h() == first
    (root / "src" / "helper.py").write_text("X = 1\n")
    second = h()
    assert second != first
    (root / "model" / "weights.json").write_text('{"name": "scaler-v2", "factor": 4}\n')
    third = h()
    assert third != second
    (root / "src" / "helper.py").chmod(0o600)  # sent as a+rX: 0644 either way
    assert h() == third
    (root / "src" / "helper.py").chmod(0o700)  # the executable bit is kept: 0755
    fourth = h()
    assert fourth != third
    spec.write_text(spec.read_text().replace("version: 1,", "version: 2,"))
    fifth = h()
    assert fifth != fourth
    spec.write_text(spec.read_text() + "  max_request_mb: 50\n")  # nginx's config only
    assert h() != fifth


def test_the_sent_files_are_the_hashed_ones(tmp_path: Path) -> None:
    spec = _copy(tmp_path)
    r = api.render_inference(spec, auto_lock=False)
    sent: dict[str, bytes] = {}
    for ctx in r.contexts:
        sent.update(ctx.read()[0])
    assert sorted(sent) == [
        "inference/models/scaler/1/weights.json",
        "inference/source/.amlignore",
        "inference/source/score.py",
    ]
    (spec.parent / "src" / "score.py").write_text("changed after render\n")
    with pytest.raises(SpecError, match="changed after the environment was rendered"):
        for ctx in r.contexts:
            ctx.read()


def test_keys_never_reach_the_image_or_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment's keys (in the state folder, and a copy left in the source tree where
    .amlignore leaves it out) reach neither the rendered files, the sent context nor the hash."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    spec = _copy(tmp_path)
    planted = keys.ensure(spec.stem)
    (spec.parent / "src" / "keys.tmp").write_text(planted.primary + "\n")
    r = api.render_inference(spec, auto_lock=False)
    conf = r.files["inference/nginx.conf"]
    assert "include /tmp/layerkit-serve/keys.conf;" in conf  # written at run time from the mount
    sent = [data for ctx in r.contexts for data in ctx.read()[0].values()]
    seen = "\n".join([r.dockerfile, *r.files.values(), repr(r.hash), *(d.decode("latin-1") for d in sent)])
    assert "layerkit-serve" in seen and "weights.json" in seen  # the haystack is the real one
    for key in (planted.primary, planted.secondary):
        assert key not in seen


def test_the_key_stops_at_nginx_in_every_proxied_location(tmp_path: Path) -> None:
    conf = api.render_inference(_copy(tmp_path), auto_lock=False).files["inference/nginx.conf"]
    blocks = conf.split("location ")[1:]
    assert len(blocks) >= 3
    for block in blocks:
        assert block.count("proxy_pass ") == 1
        assert 'proxy_set_header Authorization "";' in block, block


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("  scoring_route: /score;deny", "a route is '/' and letters"),
        ("  liveness_route: /a{b}", "a route is '/' and letters"),
        ("  scoring_route: /", "also a probe route"),
        ("  entry_script: ../score.py", "relative to source_directory"),
        ("  auth: token", "token auth needs Azure's identity service"),
    ],
)
def test_unsafe_or_unservable_values_are_refused(tmp_path: Path, line: str, message: str) -> None:
    spec = _copy(tmp_path)
    spec.write_text(spec.read_text().replace("  entry_script: score.py", line if "entry_script" in line
                                             else f"  entry_script: score.py\n{line}"))  # fmt: skip
    with pytest.raises(SpecError, match=message):
        api.render_inference(spec, auto_lock=False)


def test_model_name_must_be_a_plain_name(tmp_path: Path) -> None:
    spec = _copy(tmp_path)
    spec.write_text(spec.read_text().replace("name: scaler,", "name: 'a b/../c',"))
    with pytest.raises(SpecError, match="a model name is letters"):
        api.render_inference(spec, auto_lock=False)


def test_needs_the_server_and_an_entry_script(tmp_path: Path) -> None:
    spec = _copy(tmp_path)
    text = spec.read_text()
    spec.write_text(text.replace("extends: [layerkit:inference]\n", ""))
    with pytest.raises(SpecError, match="extends: \\[layerkit:inference\\]"):
        api.render_inference(spec, auto_lock=False)
    spec.write_text(text.replace("  entry_script: score.py\n", ""))
    with pytest.raises(SpecError, match=r"needs serve\.entry_script"):
        api.render_inference(spec, auto_lock=False)
    spec.write_text(text.replace("entry_script: score.py", "entry_script: notes.tmp"))
    with pytest.raises(SpecError, match="ignore file leaves it out"):
        api.render_inference(spec, auto_lock=False)


def test_pip_only_env_on_the_base_python(tmp_path: Path) -> None:
    """user_managed + conda.pip: a venv of the base's python3 at /opt/env, first on PATH; in the hash."""
    spec = _copy(tmp_path)
    r = api.render(spec, auto_lock=False)
    assert "RUN python3 -m venv /opt/env" in r.dockerfile
    assert 'ENV PATH="/opt/env/bin:' in r.dockerfile
    assert r.files["base-requirements.txt"] == "azureml-inference-server-http==1.5.1\nnumpy==1.26.4\n"
    spec.write_text(spec.read_text().replace("numpy==1.26.4", "numpy==1.26.3"))
    assert api.render(spec, auto_lock=False).hash.hash != r.hash.hash


def test_user_managed_still_refuses_conda_dependencies(tmp_path: Path) -> None:
    spec = _copy(tmp_path)
    spec.write_text(spec.read_text().replace("conda:\n", "conda:\n  dependencies: [numpy]\n"))
    with pytest.raises(SpecError, match="take no conda dependencies"):
        api.render(spec, auto_lock=False)


def test_build_inference_refuses_a_spec_without_entry_script_before_any_engine(cli, tmp_path: Path) -> None:
    spec = _copy(tmp_path)
    spec.write_text(spec.read_text().replace("  entry_script: score.py\n", ""))
    # No engine is named or reachable: the render refuses first, as bad input (exit 2).
    r = cli("build", "--inference", "--addr", "unix:///nonexistent.sock", str(spec))
    assert r.code == 2, r.err
    assert "needs serve.entry_script" in r.err and r.out == ""


def test_write_context_writes_the_inference_files(tmp_path: Path) -> None:
    r = api.render_inference(_copy(tmp_path), auto_lock=False)
    written = api.write_context(r, tmp_path / "ctx")
    assert (tmp_path / "ctx" / "inference" / "nginx.conf").read_text() == r.files["inference/nginx.conf"]
    assert len(written) == len(r.files)


def _in_spec_folder(tmp_path: Path) -> Path:
    """The default source directory (the spec's folder), holding what must never be sent."""
    spec = _copy(tmp_path)
    root = spec.parent
    text = spec.read_text().replace("  source_directory: src\n", "")
    spec.write_text(text.replace("path: model/weights.json", "path: model"))
    shutil.copy(root / "src" / "score.py", root / "score.py")
    (root / ".env").write_text("TOKEN=secret\n")
    (root / "secret.yaml").write_text("kind: Secret\n")
    (root / "deep").mkdir()
    (root / "deep" / "server.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (root / ".gitignore").write_text(".env\nsecret.yaml\n*.pem\n/src/\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / "key.conda-lock.yml").write_text("version: 1\n")
    return spec


def test_the_source_tree_leaves_out_secrets_git_the_spec_and_the_models(tmp_path: Path) -> None:
    """.gitignore (no .amlignore) is honoured with git's syntax; .git, the spec's files, its
    lock and the served models never enter the source layer, nor its hash part."""
    spec = _in_spec_folder(tmp_path)
    r = api.render_inference(spec, auto_lock=False)
    source = [f.path for ctx in r.contexts if ctx.prefix == "inference/source" for f in ctx.files]
    assert sorted(source) == [".gitignore", "conda.yaml", "noauth.yaml", "score.py"]
    models = [f.path for ctx in r.contexts if ctx.prefix.startswith("inference/models/") for f in ctx.files]
    assert models == ["model/weights.json"]
    first = r.hash.hash
    spec.write_text(spec.read_text().replace('version: "1"', 'version: "7"'))  # not hashed
    spec.write_text(spec.read_text().replace("name: scorer", "name: scorer\ndescription: edited"))
    (spec.parent / ".git" / "config").write_text("[core]\nbare = false\n")
    (spec.parent / "key.conda-lock.yml").write_text("version: 2\n")
    assert api.render_inference(spec, auto_lock=False).hash.hash == first


def test_amlignore_wins_over_gitignore(tmp_path: Path) -> None:
    spec = _in_spec_folder(tmp_path)
    (spec.parent / ".amlignore").write_text("*.yaml\n/src\n")
    r = api.render_inference(spec, auto_lock=False)
    source = sorted(f.path for ctx in r.contexts if ctx.prefix == "inference/source" for f in ctx.files)
    assert source == [".amlignore", ".env", ".gitignore", "deep/server.pem", "score.py"]


def test_the_spec_folder_without_an_ignore_file_is_warned_about(tmp_path: Path, capsys) -> None:
    spec = _in_spec_folder(tmp_path)
    (spec.parent / ".gitignore").unlink()
    api.render_inference(spec, auto_lock=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no .amlignore, .gitignore, .dockerignore" in err
    (spec.parent / ".dockerignore").write_text("src\n")
    api.render_inference(spec, auto_lock=False)
    assert capsys.readouterr().err == ""


def test_modes_are_sent_readable_by_the_image_user(tmp_path: Path) -> None:
    """umask 077: a 0600 score.py and model would be unreadable by uid 1000 after COPY."""
    spec = _copy(tmp_path)
    (spec.parent / "src" / "score.py").chmod(0o600)
    (spec.parent / "model" / "weights.json").chmod(0o600)
    r = api.render_inference(spec, auto_lock=False)
    modes: dict[str, int] = {}
    for ctx in r.contexts:
        modes.update(ctx.read()[1])
    assert modes["inference/source/score.py"] == 0o644
    assert modes["inference/models/scaler/1/weights.json"] == 0o644


def test_a_fifo_model_is_refused(tmp_path: Path) -> None:
    import os

    spec = _copy(tmp_path)
    (spec.parent / "model" / "weights.json").unlink()
    os.mkfifo(spec.parent / "model" / "weights.json")
    spec.write_text(spec.read_text().replace("path: model/weights.json", "path: model"))
    with pytest.raises(SpecError, match="not a regular file"):
        api.render_inference(spec, auto_lock=False)


def test_one_cap_over_the_source_tree_and_all_models(tmp_path: Path) -> None:
    """Each part under the cap, together over it: refused before reading (sparse files)."""
    from layerkit.render.usercontext import MAX_BYTES

    spec = _copy(tmp_path)
    root = spec.parent
    with open(root / "src" / "big.bin", "wb") as f:
        f.truncate(MAX_BYTES // 2)
    (root / "big").mkdir()
    with open(root / "big" / "weights.bin", "wb") as f:
        f.truncate(MAX_BYTES // 2 + 1)
    spec.write_text(spec.read_text() + "    - {name: big, path: big}\n")
    with pytest.raises(SpecError, match=r"source tree and models .* holds more than 512 MiB"):
        api.render_inference(spec, auto_lock=False)


def test_build_inference_of_a_multi_platform_spec_needs_a_platform(cli, tmp_path: Path) -> None:
    """An inference image serves on one platform: building the first of two silently would
    give an arm64 fleet an amd64 image."""
    shutil.copytree(SPECS, tmp_path / "inference")
    spec = tmp_path / "inference" / "noauth.yaml"
    spec.write_text(
        spec.read_text().replace(
            "user_managed: true\n", "user_managed: true\nplatforms: [linux-64, linux-aarch64]\n"
        )
    )
    r = cli("build", str(spec), "--inference", "--no-lock")
    assert r.code == 2 and "pass --platform P to build the inference image" in r.err, r.err
    assert len(r.err.strip().splitlines()) <= 2  # the warning for the user's own base, then the one error
