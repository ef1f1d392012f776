# syntax=docker/dockerfile:1
# The outpost-hub image: Outpost's control plane. Build it from the
# repository root:
#
#   docker build -f deploy/docker/outpost-hub.Dockerfile \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" -t outpost-hub .
#
# `make images` assembles the same image without a Docker engine.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd cmd
COPY gen gen
COPY internal internal
ARG VERSION=dev
# The same flags as `make build`; without VCS stamping the binary depends
# only on the source and VERSION.
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/outposthq/outpost/internal/hubcmd.Version=${VERSION} -X github.com/outposthq/outpost/internal/agentcmd.Version=${VERSION}" \
      -o /out/outpost-hub ./cmd/outpost-hub

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
# The repository carries no LICENSE file yet; pass the SPDX expression once it does.
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="outpost-hub" \
      org.opencontainers.image.source="https://github.com/outposthq/outpost" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="${LICENSES}"
COPY --from=build /out/outpost-hub /usr/local/bin/outpost-hub
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/outpost-hub"]
