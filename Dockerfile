# Multi-stage build: a static binary on a distroless base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/hyperviseur ./cmd/hyperviseur \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hyperviseur /usr/local/bin/hyperviseur
COPY configs/ /etc/hyperviseur/
# The data volume must be writable by the nonroot user (uid 65532).
COPY --from=build --chown=65532:65532 /out/state /var/lib/hyperviseur
WORKDIR /var/lib/hyperviseur
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/hyperviseur"]
CMD ["serve", "--config", "/etc/hyperviseur/hyperviseur.yaml"]
