# syntax=docker/dockerfile:1
# One image for all four fortunes: the fortune is chosen at run time with
# --fortune or OMIKUJI_FORTUNE. Without Docker, `go run ./tools/image build`
# builds the same image (docs/image.md explains both).
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=v1 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" \
#     -t REGISTRY/omikuji/fortune:TAG --push .

# The compiler runs natively and cross-compiles, so an arm64 (Graviton) image
# builds at full speed on an amd64 machine and vice versa.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd/ cmd/
COPY internal/ internal/
COPY tools/image/ tools/image/
ARG TARGETOS TARGETARCH VERSION REVISION SOURCE_DATE_EPOCH
# `omikuji version` prints the stamped VERSION and REVISION. The SBOM is read
# from the binary's own build information by the same code tools/image uses,
# so both images carry the same /sbom.cdx.json.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags="-s -w -X github.com/omikuji/omikuji/internal/version.version=$VERSION -X github.com/omikuji/omikuji/internal/version.commit=$REVISION" \
      -o /out/omikuji ./cmd/omikuji && \
    go run ./tools/image sbom --version "$VERSION" /out/omikuji > /out/sbom.cdx.json

# No shell, no package manager: a static binary needs nothing else.
FROM gcr.io/distroless/static-debian13:nonroot
ARG VERSION REVISION
LABEL org.opencontainers.image.title="omikuji" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.description="Japanese fortune slips on Kubernetes: the load balancer draws the lot." \
      org.opencontainers.image.source="https://github.com/omikuji/omikuji" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION"
# Owned by root and read-only: the user that runs the server cannot change it.
COPY --from=build --chown=0:0 --chmod=0555 /out/omikuji /omikuji
COPY --from=build --chown=0:0 --chmod=0444 /out/sbom.cdx.json /sbom.cdx.json
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/omikuji"]
CMD ["serve"]
