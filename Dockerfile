# syntax=docker/dockerfile:1
# Build: docker build -t listener .
# Run:   docker run -v listener-state:/var/lib/listener -v $PWD/config.yaml:/etc/listener/config.yaml:ro listener
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/listener ./cmd/listener

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/listener /usr/local/bin/listener
# Badger state (outbox, sync state, dead letters). Keep it on a volume: losing it costs a full
# re-upload, never data, but the outbox holds what MISP published while Sentinel was unreachable.
VOLUME ["/var/lib/listener"]
USER nonroot:nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/listener"]
CMD ["run", "-c", "/etc/listener/config.yaml"]
