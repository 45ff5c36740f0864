# The two commands of the README: `make demo` (main job on the embedded default) and `make test`.
PY := .venv/bin/python
.PHONY: setup demo test test-fast lint slurm

setup: .setup-stamp
.setup-stamp: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch .setup-stamp

demo: setup
	$(PY) -m rsscale.sweep +grid=depth_width

slurm: setup
	bash scripts/slurm_up.sh

test: setup slurm
	$(PY) -m ruff check .
	$(PY) -m mypy  # the packages listed in pyproject's [tool.mypy]
	$(PY) -m pytest -n 2 --dist loadgroup

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy
