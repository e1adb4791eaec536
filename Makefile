# One-command entry points. `make test` is what CI runs (through .ci/run).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUNTIME_STAMP := $(VENV)/.runtime-stamp
EXAMPLES := $(wildcard examples/micado/*.yaml)
DEMO_OUT ?= build/demo

.PHONY: help venv runtime debian-packages test test-molecule test-site cluster-bins test-cluster cluster lint demo demo-cloud bench bench-controller collection clean

help:
	@echo "make demo   validate and render MiCADO's example ADTs"
	@echo "make demo-cloud  the nginx EC2 ADT scaled at both levels on moto, timeline as it happens (~4 min)"
	@echo "make runtime  .venv with the micado command only (what make demo uses)"
	@echo "make venv   .venv with micado and the test and lint tools (what make test uses)"
	@echo "make test   set up what is needed and run the whole test suite (scripts/run-tests:"
	@echo "            the control plane builds in the background while the other tests run)"
	@echo "make test-molecule  the collection's molecule scenarios only (podman; part of make test)"
	@echo "make test-site      site.yml on the four-host test bed, one master and HA (part of make test)"
	@echo "make cluster-bins   build (or reuse) kube-apiserver, etcd, kwok, ... from the Go module proxy"
	@echo "make test-cluster   only the tests on that real control plane (part of make test)"
	@echo "make cluster        that control plane on loopback with NODES=2 kwok nodes, to try an"
	@echo "                    ADT without a cloud (foreground; Ctrl-C stops it)"
	@echo "make lint   ruff, yamllint, ansible-lint (production profile), ansible-test sanity"
	@echo "make bench  run the benchmarks (not part of make test)"
	@echo "make collection  build/micado-core-<version>.tar.gz, the micado wheel inside"
	@echo "make bench-controller  the controller's load and alert-latency benchmarks (~5 min)"

venv: $(STAMP)

runtime: $(RUNTIME_STAMP)

# the interpreter and a current pip; both installs below start from it
$(PY):
	@command -v python3 >/dev/null || { echo "error: python3 (>= 3.11) is needed" >&2; exit 1; }
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "error: python3 must be 3.11 or newer" >&2; exit 1; }
	@python3 -m venv $(VENV) || { echo "error: cannot create $(VENV);" \
		"on Debian install python3-venv" >&2; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip

# what `micado` needs to run (make demo): the package and its dependencies, no test tools
$(RUNTIME_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	@touch $@

# the test and lint tools on top (make test, make lint, make bench); includes the runtime
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@ $(RUNTIME_STAMP)

debian-packages:
	@scripts/ensure-debian-packages tests/debian-packages.txt

# the non-cluster tests while the control plane builds (or is reused), then the cluster tests
# (the Debian packages and the virtualenv are installed while the build has started already;
# `make`, not $(MAKE): with $(MAKE) in it, `make -n test` would run the tests)
test:
	PYTHON=$(PY) RUN_TESTS_SETUP='make --no-print-directory VENV=$(VENV) debian-packages venv' \
		scripts/run-tests

test-molecule: debian-packages venv
	$(PY) -m pytest tests/role_scenarios

test-site: debian-packages venv
	$(PY) -m pytest tests/integration/test_site.py tests/integration/test_site_ha.py

# the real control plane from source, cached by version (scripts/build-cluster-bins)
cluster-bins:
	scripts/build-cluster-bins

# the cluster tests alone (make test runs them too, after the others)
test-cluster: venv cluster-bins
	$(PY) -m pytest -m cluster

# a real control plane to try an ADT on (README, "Real Kubernetes for tests")
NODES ?= 2
cluster: venv
	$(PY) scripts/local-cluster --nodes $(NODES)

# checks only: no tool may write to the tree (no --fix); the last step proves it
lint: venv
	@{ git status --porcelain --untracked-files=all 2>/dev/null || true; } > $(VENV)/.lint-tree-before
	$(VENV)/bin/ruff check --no-fix controller tests benchmarks
	$(VENV)/bin/yamllint -s .
	$(VENV)/bin/ansible-lint --profile production collections/ansible_collections/micado/core playbooks inventories
	scripts/ansible-test-sanity
	@{ git status --porcelain --untracked-files=all 2>/dev/null || true; } | \
		diff -u $(VENV)/.lint-tree-before - || \
		{ echo "error: make lint changed the files above; a linter must not write" >&2; exit 1; }

demo: runtime
	@set -e; for adt in $(EXAMPLES); do \
		echo "== micado validate $$adt"; $(VENV)/bin/micado validate "$$adt"; \
		out=$(DEMO_OUT)/$$(basename $$adt .yaml); \
		echo "== micado render $$adt -o $$out"; $(VENV)/bin/micado render "$$adt" -o "$$out"; \
	done
	@echo "== micado simulate: MiCADO's stressng and nginx rules, closed loop on a modelled cluster"
	$(VENV)/bin/micado simulate examples/micado/stressng_nova.yaml \
		--scenario examples/scenarios/stressng.yaml -o $(DEMO_OUT)/stressng-simulation.html
	$(VENV)/bin/micado simulate examples/micado/nginx_ec2.yaml \
		--scenario examples/scenarios/nginx.yaml -o $(DEMO_OUT)/nginx-simulation.html
	@echo "== a broken ADT: every problem with its path, exit code 2"
	@$(VENV)/bin/micado validate examples/broken/stressng_broken.yaml || test $$? -eq 2

# the daemon scales VMs through ansible-runner on moto's EC2 (needs the test venv: moto, ...)
demo-cloud: venv
	$(PY) scripts/demo-cloud

bench: venv
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-columns=min,median,max,rounds

bench-controller: debian-packages venv
	$(PY) benchmarks/bench_controller_load.py
	$(PY) benchmarks/bench_alert_latency.py

collection: venv
	scripts/build-collection build

clean:
	rm -rf build .pytest_cache .benchmarks
