# omikuji — every command a user or CI runs. `make help` lists them.
GO ?= go
SHELL := /bin/bash

.DEFAULT_GOAL := help
.PHONY: help run test lint test-unit test-deploy test-infra fuzz build install image-tar e2e bench aws-up aws-down deps

# What `omikuji version` prints: the go command records the git commit (and a
# pseudo-version) itself; VERSION=v1.2.3 stamps a release's name.
VERSION ?=
LDFLAGS := $(if $(VERSION),-X github.com/omikuji/omikuji/internal/version.version=$(VERSION))

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## the whole system on this machine: replicas + a random L4 balancer on :8080
	$(GO) run ./cmd/omikuji local

build: ## the binaries (omikuji, kubectl-omikuji) in dist/; VERSION=v1.2.3 names the release
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags='-s -w $(LDFLAGS)' -o dist/ ./cmd/...

install: ## install the binaries into GOBIN (go env GOBIN; empty: ~/go/bin)
	$(GO) install -buildvcs=auto -ldflags='$(LDFLAGS)' ./cmd/...

test: lint test-unit test-deploy test-infra fuzz ## every offline test (what a newcomer and CI run)

lint: ## gofmt, go vet and staticcheck in every module
	scripts/lint.sh

test-unit: ## the product module, with the race detector; then the statistics' calibration without it
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run Calibration ./internal/audit/simulate

test-deploy: ## kustomize builds, strict decoding, Pod Security, invariants, kube-score
	cd deploy && $(GO) test -count=1 -timeout 20m ./...

test-infra: ## CloudFormation lint, the AWS flow against moto, eksctl validation, shellcheck
	cd infra && $(GO) test -count=1 -timeout 30m ./...

fuzz: ## each fuzz target briefly
	scripts/fuzz.sh

image-tar: ## the container image (omikuji:dev) as a docker-archive tarball, without Docker
	$(GO) run ./tools/image build -o dist/omikuji-image.tar $(if $(VERSION),--version $(VERSION)) \
		$(shell git rev-parse -q --verify HEAD 2>/dev/null | sed 's/^/--revision /')

E2E_NODES ?= 2
e2e: ## prove the odds on a real two-node Kubernetes cluster (root; E2E_NODES=1 for one node)
	cd test/e2e && $(GO) test -count=1 -v ./cluster/... ./cmd/... && $(GO) test -count=1 -timeout 85m -v . -args -nodes=$(E2E_NODES)

bench: ## server CPU per draw: omikuji vs nginx vs Express
	bench/run.sh

aws-up: ## network → registry → image → cluster → autoscaler → loadbalancer → app → draw
	infra/scripts/aws-up.sh

aws-down: ## delete everything aws-up created, in the right order
	infra/scripts/aws-down.sh

deps: ## install the Debian packages the tests use (root)
	scripts/deps.sh
