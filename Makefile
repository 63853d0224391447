# ChatScalable — build, run and test the whole workspace.
# `make run` starts the quickstart on http://localhost:8080; `make test` runs every test.

MODULES  := broker e2e gateway services tools web
PKGS     := $(addsuffix /...,$(addprefix ./,$(MODULES)))
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
GOFLAGS_BUILD := -trimpath -ldflags '$(LDFLAGS)'
FUZZTIME ?= 5s
NODE     ?= $(shell hostname)

# Fuzz targets run briefly by `make test`: package:Target.
FUZZ := ./gateway/internal/delivery:FuzzParseCursor ./gateway/internal/delivery:FuzzAppendEvent ./gateway/internal/api:FuzzPublishInput ./gateway/internal/api:FuzzSimpleBody ./broker:FuzzAppendJSONString

NATSCLI  := tools/bin/nats
NATSCLI_VERSION := v0.5.0
# Caddy is the compose deployment's entry point (deployments/caddy).
CADDY    := tools/bin/caddy
CADDY_VERSION := v2.11.4
# Centrifugo is the peer `make bench-peers` measures against, built from the module proxy.
CENTRIFUGO := tools/bin/centrifugo
CENTRIFUGO_VERSION := v6.9.1
# The Mercure.rocks hub (a Caddy build with the Mercure module), the other peer; its module,
# tools/mercure-hub, pins the hub's version and checksums.
MERCURE  := tools/bin/mercure
# golangci-lint runs the checks of .golangci.yml in `make lint`.
GOLANGCI := tools/bin/golangci-lint
GOLANGCI_VERSION := v2.15.0

COMMANDS := chat-gateway chat-signin chat-broker chat-presence chat-rooms
IMAGE_CONTEXT := build/image-context
IMAGE_TAG ?= $(VERSION)
IMAGE_LATEST ?= 1

COMPOSE := docker-compose -f deployments/compose/compose.yaml -p chatscalable
STACK   := chatscalable

# Secrets of the compose project and the swarm stack (deployments/local/secrets.sh):
# a NATS password per role and for the routes, a test CA whose node certificate is valid for
# NATS_TLS_HOSTS, the gateways' JWT secret and chat-signin's session key. Swarm secrets are named CHAT_SECRET_PREFIX + name; name:file where the
# file's name differs.
SECRETS ?= build/secrets
NATS_TLS_HOSTS := broker-1,broker-2,broker-3,localhost,127.0.0.1
SWARM_SECRETS := nats_gateway_password nats_service_password nats_reader_password nats_admin_password \
	nats_cluster_password nats_tls_ca:ca.pem nats_tls_cert:node.pem nats_tls_key:node-key.pem \
	jwt_secret signin_session_key

.PHONY: bench bench-auth bench-mercure bench-peers all build run cluster cluster-brokers nats tools test unit soak fuzz lint fmt clean images secrets compose-up compose-down stack-secrets stack-deploy stack-rm

all: build

## build: compile every command into bin/
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o $(BIN)/chat-gateway ./gateway/cmd/chat-gateway
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o $(BIN)/chat-signin ./gateway/cmd/chat-signin
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o $(BIN)/chat-broker ./broker/cmd/chat-broker
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o $(BIN)/chat-presence ./services/cmd/chat-presence
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o $(BIN)/chat-rooms ./services/cmd/chat-rooms
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o $(BIN)/chat-bench ./tools/chat-bench

## run: build and start the quickstart (one gateway, embedded NATS) on :8080
run: build
	./$(BIN)/chat-gateway --http-addr :8080 --node-name $(NODE) --data-dir ./data

## images: static linux binaries and one FROM-scratch image per command, plus chatscalable/caddy (the compose entry point); tagged $(IMAGE_TAG) and :latest
images: $(CADDY)
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)/empty $(IMAGE_CONTEXT)/caddy/empty
	@command -v docker >/dev/null || { echo "make images needs docker"; exit 1; }
	CGO_ENABLED=0 GOOS=linux go build $(GOFLAGS_BUILD) -o $(IMAGE_CONTEXT)/chat-gateway ./gateway/cmd/chat-gateway
	CGO_ENABLED=0 GOOS=linux go build $(GOFLAGS_BUILD) -o $(IMAGE_CONTEXT)/chat-signin ./gateway/cmd/chat-signin
	CGO_ENABLED=0 GOOS=linux go build $(GOFLAGS_BUILD) -o $(IMAGE_CONTEXT)/chat-broker ./broker/cmd/chat-broker
	CGO_ENABLED=0 GOOS=linux go build $(GOFLAGS_BUILD) -o $(IMAGE_CONTEXT)/chat-presence ./services/cmd/chat-presence
	CGO_ENABLED=0 GOOS=linux go build $(GOFLAGS_BUILD) -o $(IMAGE_CONTEXT)/chat-rooms ./services/cmd/chat-rooms
	cp deployments/docker/Dockerfile $(IMAGE_CONTEXT)/
	@for c in $(COMMANDS); do \
		echo "image chatscalable/$$c:$(IMAGE_TAG)"; \
		latest=""; [ "$(IMAGE_LATEST)" = 1 ] && latest="-t chatscalable/$$c:latest"; \
		docker build -q --build-arg BIN=$$c --build-arg VERSION=$(VERSION) \
			-t chatscalable/$$c:$(IMAGE_TAG) $$latest $(IMAGE_CONTEXT) >/dev/null || exit 1; \
	done
	cp $(CADDY) deployments/caddy/Caddyfile deployments/caddy/Caddyfile.swarm deployments/caddy/Dockerfile $(IMAGE_CONTEXT)/caddy/
	@echo "image chatscalable/caddy:$(IMAGE_TAG)"
	@latest=""; [ "$(IMAGE_LATEST)" = 1 ] && latest="-t chatscalable/caddy:latest"; \
	docker build -q --build-arg VERSION=$(VERSION) -t chatscalable/caddy:$(IMAGE_TAG) $$latest $(IMAGE_CONTEXT)/caddy >/dev/null

## secrets: make the missing NATS passwords, test CA, JWT secret and session key in $(SECRETS) (kept between runs)
secrets:
	deployments/local/secrets.sh $(SECRETS) --tls $(NATS_TLS_HOSTS)

## compose-up: the compose project (3 brokers, 3 gateways with auth on and chat-signin behind Caddy on :8080, services), NATS with passwords and TLS; needs `make images`
compose-up: secrets
	CHAT_SECRETS=$(abspath $(SECRETS)) $(COMPOSE) up -d --scale presence=2
	@echo "ChatScalable on http://localhost:$${CHAT_PORT:-8080} (make compose-down stops it)"

## compose-down: stop the compose project and remove its containers, network and volumes
compose-down:
	CHAT_SECRETS=$(abspath $(SECRETS)) $(COMPOSE) down -v --remove-orphans

## stack-secrets: create the swarm secrets that are missing from $(SECRETS) (see `secrets`)
stack-secrets: secrets
	@for s in $(SWARM_SECRETS); do name=$(CHAT_SECRET_PREFIX)$${s%%:*}; file=$(SECRETS)/$${s#*:}; \
		docker secret inspect $$name >/dev/null 2>&1 || { \
			docker secret create $$name $$file >/dev/null && echo "created the $$name secret"; } || exit 1; \
	done

## stack-deploy: deploy the swarm stack (needs `make images` and a swarm; creates missing secrets)
stack-deploy: stack-secrets
	docker stack deploy -c deployments/swarm/stack.yaml $(STACK)

## stack-rm: remove the swarm stack
stack-rm:
	docker stack rm $(STACK)

## cluster: 3 gateway nodes as a peer mesh on :8081-:8083 (NATS on 4231-4233); a node that dies leaves the others running (deployments/local/cluster.sh kill 2 / start 2); Ctrl-C stops them
cluster: build
	BIN=$(BIN) DATA=data/mesh deployments/local/cluster.sh mesh

## cluster-brokers: 3 chat-broker nodes (NATS on 4231-4233) and 2 gateways on :8081-:8082
cluster-brokers: build
	BIN=$(BIN) DATA=data/brokers deployments/local/cluster.sh brokers

## bench: the standard benchmarks on a local 3-node mesh and a single node; writes docs/BENCHMARKS.md and the fan-out sweep picture docs/bench-fanout.svg (RUNS=3, SHORT=1, MESH_PROCS=1, BENCH_HTTP_BASE=8091)
bench: build
	BIN=$(BIN) deployments/local/bench.sh

## bench-auth: what identities cost: publish and connect with --auth off, HS256 and RS256 tokens (RUNS=3)
bench-auth: build
	BIN=$(BIN) deployments/local/bench-auth.sh

## bench-mercure: fan-out through the Mercure hub against fan-out through a room, alternated (RUNS=3, TOPOLOGY=single|mesh)
bench-mercure: build
	BIN=$(BIN) deployments/local/bench-mercure.sh

## bench-peers: ChatScalable, Centrifugo $(CENTRIFUGO_VERSION) and Mercure side by side, same scenarios, alternated; writes the peers section of docs/BENCHMARKS.md (RUNS=3, DURATION=4s, BIG=1; about 9 minutes)
bench-peers: build $(CENTRIFUGO) $(MERCURE)
	BIN=$(BIN) CENTRIFUGO=$(CENTRIFUGO) MERCURE=$(MERCURE) deployments/local/bench-peers.sh

## nats: install natscli $(NATSCLI_VERSION) as tools/bin/nats (about two minutes); then `export PATH="$$PWD/tools/bin:$$PATH"` puts it on the shell's PATH
nats: $(NATSCLI)

## tools: install natscli $(NATSCLI_VERSION), Caddy $(CADDY_VERSION) and golangci-lint $(GOLANGCI_VERSION) into tools/bin (used by the tests, `make images` and `make lint`)
tools: $(NATSCLI) $(CADDY) $(GOLANGCI)

# Several minutes: Centrifugo and its dependencies compile from source.
$(CENTRIFUGO):
	GOBIN=$(CURDIR)/tools/bin go install -ldflags '-X github.com/centrifugal/centrifugo/v6/internal/build.Version=$(CENTRIFUGO_VERSION:v%=%)' \
		github.com/centrifugal/centrifugo/v6@$(CENTRIFUGO_VERSION)

# Outside the workspace (GOWORK=off): the hub's dependencies are not ours.
$(MERCURE): tools/mercure-hub/go.mod tools/mercure-hub/go.sum tools/mercure-hub/main.go
	cd tools/mercure-hub && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o $(CURDIR)/$(MERCURE) .

$(NATSCLI):
	GOBIN=$(CURDIR)/tools/bin go install github.com/nats-io/natscli/nats@$(NATSCLI_VERSION)

$(GOLANGCI):
	GOBIN=$(CURDIR)/tools/bin go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

# A static binary for the FROM-scratch image; built once (about two minutes).
$(CADDY):
	CGO_ENABLED=0 GOBIN=$(CURDIR)/tools/bin go install -trimpath -ldflags '-s -w' github.com/caddyserver/caddy/v2/cmd/caddy@$(CADDY_VERSION)

## test: every test of every module with the race detector, then brief fuzzing
test: unit fuzz

unit: $(NATSCLI) $(CADDY)
	go test -race -count=1 -timeout 8m $(PKGS)

## soak: the multi-host partition and latency scenarios (e2e/hoststest, as root) one at a time, with more load and longer faults; prints the summary table (docs/RELIABILITY.md; about 10 minutes)
soak:
	cd e2e && HOSTS_SOAK=1 go test -count=1 -v -parallel 1 -timeout 40m ./hoststest/

fuzz:
	@set -e; for t in $(FUZZ); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name in $$pkg for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

## lint: gofmt check, go vet, and golangci-lint with .golangci.yml (errcheck, staticcheck, unused, gosec, ineffassign)
lint: $(GOLANGCI)
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet $(PKGS)
	@set -e; for m in $(MODULES); do echo "golangci-lint $$m"; (cd $$m && ../$(GOLANGCI) run --config ../.golangci.yml ./...); done

fmt:
	gofmt -w $(MODULES)

clean:
	rm -rf $(BIN) build
