# omikuji — every command a user or CI runs. `make help` lists them.
GO ?= go
SHELL := /bin/bash

.DEFAULT_GOAL := help
.PHONY: help run test lint test-unit test-deploy test-infra fuzz build image-tar e2e bench aws-up aws-down deps

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## the whole system on this machine: replicas + a random L4 balancer on :8080
	$(GO) run ./cmd/omikuji local

build: ## the omikuji binary in dist/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o dist/omikuji ./cmd/omikuji

test: lint test-unit test-deploy test-infra fuzz ## every offline test (what a newcomer and CI run)

lint: ## gofmt, go vet and staticcheck in every module
	scripts/lint.sh

test-unit: ## the product module, with the race detector
	$(GO) test -race -count=1 ./...

test-deploy: ## kustomize builds, strict decoding, Pod Security, invariants, kube-score
	cd deploy && $(GO) test -count=1 -timeout 20m ./...

test-infra: ## CloudFormation lint, the AWS flow against moto, eksctl validation, shellcheck
	cd infra && $(GO) test -count=1 -timeout 30m ./...

fuzz: ## each fuzz target briefly
	scripts/fuzz.sh

image-tar: ## the container image as a docker-archive tarball, without Docker
	$(GO) run ./tools/image build -o dist/omikuji-image.tar

E2E_NODES ?= 2
e2e: ## prove the odds on a real two-node Kubernetes cluster (root; E2E_NODES=1 for one node)
	cd test/e2e && $(GO) test -count=1 -v ./cluster/... ./cmd/... && $(GO) test -count=1 -timeout 85m -v . -args -nodes=$(E2E_NODES)

bench: ## server CPU per draw: omikuji vs nginx vs Express
	bench/run.sh

aws-up: ## network → registry → image → cluster → autoscaler → app
	infra/scripts/aws-up.sh

aws-down: ## delete everything aws-up created, in the right order
	infra/scripts/aws-down.sh

deps: ## install the Debian packages the tests use (root)
	scripts/deps.sh
