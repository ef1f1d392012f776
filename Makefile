# Outpost — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CACHE      ?= $(HOME)/.cache/outpost
TOOLS      := $(CACHE)/bin
export PATH := $(TOOLS):$(PATH)
GO         ?= go
FUZZTIME   ?= 3s
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X github.com/outposthq/outpost/internal/hubcmd.Version=$(VERSION) -X github.com/outposthq/outpost/internal/agentcmd.Version=$(VERSION)

BUF_VERSION           := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
CONNECT_GO_VERSION    := v1.21.1
GOLANGCI_VERSION      := v2.11.4

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

.PHONY: build
build: ## Build outpost-hub, outpost-agent and outpost into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

.PHONY: images
images: tofu ## Assemble the outpost-hub, outpost-agent and outpost images as OCI layouts in bin/images/ without Docker; prints their digests
	SOURCE_DATE_EPOCH="$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || echo 0)}" \
	  $(GO) run ./hack/images -out bin/images -version '$(VERSION)' -revision "$$(git rev-parse HEAD 2>/dev/null)" -tofu "$$(./hack/tofu.sh --path)"

.PHONY: testbins
testbins: ## Build kube-apiserver and etcd from the Go module proxy into the cache (first time: ~10 min)
	./hack/testbins.sh >/dev/null

.PHONY: tofu
tofu: ## Build the pinned OpenTofu CLI from the Go module proxy into the cache (first time: ~6 min)
	./hack/tofu.sh >/dev/null

.PHONY: test
test: testbins tofu ## Vet, run every test with the race detector (real kube-apiserver and OpenTofu, SQLite, PostgreSQL), then each fuzz target briefly
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	KUBEBUILDER_ASSETS="$$(./hack/testbins.sh --dir)" $(GO) test -race -count=1 -timeout 30m ./...
	FUZZTIME=$(FUZZTIME) ./hack/fuzz.sh

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 3s)
	FUZZTIME=$(FUZZTIME) ./hack/fuzz.sh

.PHONY: demo
demo: build testbins tofu ## Local kube-apiserver, hub on SQLite, an agent, a sample app deployed and shown (Ctrl-C stops it)
	$(GO) build -o bin/ ./hack/demo
	KUBEBUILDER_ASSETS="$$(./hack/testbins.sh --dir)" bin/demo

.PHONY: bench
bench: bench-manifests bench-helm bench-secrets bench-reconcile ## Run the benchmarks in bench/ (see bench/RESULTS.md)
	$(GO) run ./bench/dispatch -agents 100,1000 -stores sqlite,postgres

.PHONY: bench-manifests
bench-manifests: build ## Benchmark the manifests executor against kubectl and the agent's memory (builds kubectl; see bench/RESULTS.md)
	./hack/testbins.sh kubectl >/dev/null
	$(GO) run ./bench/manifests

.PHONY: bench-helm
bench-helm: build ## Benchmark helm installs by the agent against the helm CLI and the agent's peak memory (builds helm; see bench/RESULTS.md)
	./hack/helmcli.sh >/dev/null
	$(GO) run ./bench/helm

.PHONY: bench-reconcile
bench-reconcile: build testbins ## Benchmark reconciliation: 1000 releases, drift-correction latency, false drift and idle CPU over 10 idle minutes (see bench/RESULTS.md)
	KUBEBUILDER_ASSETS="$$(./hack/testbins.sh --dir)" $(GO) run ./bench/reconcile

.PHONY: bench-secrets
bench-secrets: build testbins ## Benchmark secret set → Secret → workload rollout latency against real hub and agent processes (see bench/RESULTS.md)
	KUBEBUILDER_ASSETS="$$(./hack/testbins.sh --dir)" $(GO) run ./bench/secrets

.PHONY: bench-terraform
bench-terraform: build testbins tofu ## Benchmark 20 terraform applies run in parallel by the agent against a sequential tofu init && apply loop, and the agent's memory (builds OpenTofu; see bench/RESULTS.md)
	KUBEBUILDER_ASSETS="$$(./hack/testbins.sh --dir)" $(GO) run ./bench/terraform

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-connect-go:
	GOBIN=$(TOOLS) $(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(CONNECT_GO_VERSION)
$(TOOLS)/golangci-lint:
	GOBIN=$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

.PHONY: generate
generate: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-connect-go ## Regenerate protobuf and connect code into gen/
	buf lint
	buf generate

.PHONY: verify
verify: generate ## Fail if generated code is stale
	git diff --exit-code -- gen/

.PHONY: lint
lint: $(TOOLS)/golangci-lint ## Run golangci-lint
	golangci-lint run ./...

.PHONY: clean
clean: ## Remove build outputs
	rm -rf bin/
