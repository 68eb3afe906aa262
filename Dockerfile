# syntax=docker/dockerfile:1
# One image for all four fortunes: the fortune is chosen at run time with
# --fortune or OMIKUJI_FORTUNE. Without Docker, `make image-tar` builds the same
# image (tools/image); docs/image.md explains both.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/omikuji:TAG --push .

# The compiler runs natively and cross-compiles, so an arm64 (Graviton) image
# builds at full speed on an amd64 machine and vice versa.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd/ cmd/
COPY internal/ internal/
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags='-s -w' -o /out/omikuji ./cmd/omikuji

# No shell, no package manager: a static binary needs nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/omikuji /omikuji
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/omikuji"]
CMD ["serve"]
