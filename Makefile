# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
STAMP := .cache/installed.stamp

.PHONY: install test lint unit demo bench golden protos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m pip install --quiet -e '.[lock,build,dev]'
	@mkdir -p .cache && touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(PYTHON) -m ruff check layerkit tests bench
	$(PYTHON) -m ruff format --check layerkit tests bench
	$(PYTHON) -m mypy layerkit

# The whole suite, as CI runs it (.ci/run calls exactly this).
test: lint
	$(PYTHON) -m pytest -q -p no:cacheprovider

unit: $(STAMP)
	$(PYTHON) -m pytest -q -m "not integration"

golden: $(STAMP)
	$(PYTHON) -m pytest -q tests/test_render_golden.py --update-golden

demo: $(STAMP)
	bash scripts/demo.sh

bench: $(STAMP)
	$(PYTHON) bench/run.py

clean:
	rm -rf .cache out dist build

protos: $(STAMP)
	bash scripts/gen_protos.sh
