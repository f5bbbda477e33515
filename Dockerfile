# syntax=docker/dockerfile:1
# Build: docker build -t listener .
# Run:   docker run -v listener-state:/var/lib/listener \
#          -v $PWD/config.yaml:/etc/listener/config.yaml:ro \
#          -e LISTENER_METRICS_LISTEN=0.0.0.0:9464 -p 127.0.0.1:9464:9464 listener
# docs/DEPLOYING.md covers Azure Container Apps (managed identity, volume, probes).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/listener ./cmd/listener \
 && mkdir -m 0700 -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/listener /usr/local/bin/listener
# Badger state (outbox, sync state, dead letters). Keep it on a volume: losing it costs a full
# re-upload, never data, but the outbox holds what MISP published while Sentinel was
# unreachable. The directory is created owned by the image's non-root user (65532) so that a
# fresh named volume inherits that owner.
COPY --from=build --chown=65532:65532 /out/state /var/lib/listener
VOLUME ["/var/lib/listener"]
USER 65532:65532
# 8080: the MISP workflow webhook (webhook.listen); 9464: /metrics, /healthz, /readyz, /status
# (metrics.listen). Both listen on 127.0.0.1 by default: set them to 0.0.0.0:PORT in a container.
EXPOSE 8080 9464
ENTRYPOINT ["/usr/local/bin/listener"]
CMD ["run", "-c", "/etc/listener/config.yaml"]
