# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
STAMP := .cache/installed.stamp

.PHONY: install test lint unit demo bench golden protos precompile clean services services-stop

$(STAMP): pyproject.toml
	@echo "installing layerkit and its dependencies with pip (first time: a few minutes)" >&2
	$(PYTHON) -m pip install --progress-bar off -e '.[lock,build,dev]' 1>&2
	@mkdir -p .cache && touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(PYTHON) -m ruff check layerkit tests bench
	$(PYTHON) -m ruff format --check layerkit tests bench
	$(PYTHON) -m mypy layerkit
	lint-imports  # the layer contracts in pyproject.toml: a reversed import fails CI

# The whole suite, as CI runs it (.ci/run calls exactly this).
test: lint
	$(PYTHON) -m pytest -q -p no:cacheprovider --durations=30

unit: $(STAMP)
	$(PYTHON) -m pytest -q -m "not integration"

golden: $(STAMP)
	$(PYTHON) -m pytest -q tests/test_render_golden.py --update-golden

demo: $(STAMP)
	bash scripts/demo.sh

# Your own dockerd + registry + base image on 127.0.0.1 (state under SERVICES_DIR); prints
# DOCKER_HOST, REGISTRY, BASE_REGISTRY, BASE_IMAGE and the PIDs on stdout. README: "Local services".
SERVICES_DIR ?= .cache/services
REGISTRY_PORT ?=
services:
	@bash scripts/services/up.sh start $(SERVICES_DIR) $(REGISTRY_PORT)

services-stop:
	@bash scripts/services/up.sh stop $(SERVICES_DIR)

bench: $(STAMP)
	$(PYTHON) bench/run.py

clean: services-stop
	rm -rf .cache out dist build

# layerkit/_generated/: the compiled Dockerfile template and the parsed catalog (a stale one
# is ignored at run time, only slower; tests/test_precompiled.py fails until this is re-run).
precompile: $(STAMP)
	$(PYTHON) scripts/precompile.py

protos: $(STAMP)
	bash scripts/gen_protos.sh
