# Two entry points for users: `make demo` and `make test`. Both install into .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint clean-venv

demo: $(STAMP)
	$(BIN)/cadsearch demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

install: $(STAMP)

# Re-install only when the package definition changes. torch goes first and pinned: pip then finds the
# CPU build on this machine's disk instead of downloading a multi-GB CUDA build.
$(STAMP): pyproject.toml scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "torch==2.13.0"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[raytrace,crop,dev,scale]"
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
