# syntax=docker/dockerfile:1
# Build: docker build -t listener \
#          --build-arg VERSION=$(git describe --tags --always --dirty) \
#          --build-arg REVISION=$(git rev-parse HEAD) \
#          --build-arg CREATED=$(git log -1 --format=%cI) .
# Run:   docker run -v listener-state:/var/lib/listener \
#          -v $PWD/config.yaml:/etc/listener/config.yaml:ro \
#          -e LISTENER_METRICS_LISTEN=0.0.0.0:9464 -p 127.0.0.1:9464:9464 listener
# docs/DEPLOYING.md covers Docker Compose, Kubernetes (Helm) and Azure Container Apps.
#
# The same file builds the release images: GoReleaser (.goreleaser.yaml) passes
# BINARY=prebuilt and a context holding the binaries it built as <os>/<arch>/listener, so the
# image carries the released, checksummed binary; a plain `docker build .` compiles the source.

# source or prebuilt: where the binary comes from.
ARG BINARY=source

FROM golang:1.26-bookworm AS source
ARG VERSION=""
ARG REVISION=""
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context has no .git (see .dockerignore), so the toolchain cannot stamp the VCS
# revision: VERSION and REVISION carry it (listener version, listener_build_info).
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags="-s -w -X github.com/mispsentinel/listener/internal/version.Version=${VERSION} -X github.com/mispsentinel/listener/internal/version.Commit=${REVISION}" \
      -o /out/listener ./cmd/listener \
 && mkdir -m 0700 -p /out/state

FROM scratch AS prebuilt
ARG TARGETPLATFORM
COPY ${TARGETPLATFORM}/listener /out/listener
WORKDIR /out/state

FROM ${BINARY} AS binary

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=""
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="listener" \
      org.opencontainers.image.description="Pushes threat intelligence from MISP into Microsoft Sentinel in near real time" \
      org.opencontainers.image.url="https://github.com/mispsentinel/listener" \
      org.opencontainers.image.source="https://github.com/mispsentinel/listener" \
      org.opencontainers.image.documentation="https://github.com/mispsentinel/listener/blob/main/docs/DEPLOYING.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=binary /out/listener /usr/local/bin/listener
# Badger state (outbox, sync state, dead letters). Keep it on a volume: losing it costs a full
# re-upload, never data, but the outbox holds what MISP published while Sentinel was
# unreachable. The directory is created owned by the image's non-root user (65532) so that a
# fresh named volume inherits that owner.
COPY --from=binary --chown=65532:65532 --chmod=0700 /out/state /var/lib/listener
VOLUME ["/var/lib/listener"]
USER 65532:65532
# 8080: the MISP workflow webhook (webhook.listen); 9464: /metrics, /healthz, /readyz, /status
# (metrics.listen). Both listen on 127.0.0.1 by default: set them to 0.0.0.0:PORT in a container.
EXPOSE 8080 9464
ENTRYPOINT ["/usr/local/bin/listener"]
CMD ["run", "-c", "/etc/listener/config.yaml"]
