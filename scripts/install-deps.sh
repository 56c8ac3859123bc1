#!/usr/bin/env bash
# Installs the real components the integration tests talk to, if missing: Mosquitto (Debian package) and
# InfluxDB 1.8.10 (built from the Go module proxy with go install). Idempotent; prints what it uses.
set -euo pipefail

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "mosquitto is missing: run 'sudo apt-get install mosquitto'" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi
echo "mosquitto: $(command -v mosquitto || echo /usr/sbin/mosquitto)"

gobin="$(go env GOPATH)/bin"
# `influxd version` says "unknown" for a go-install build: read the module version from the binary instead.
if [ ! -x "$gobin/influxd" ] || ! go version -m "$gobin/influxd" | grep -qE 'mod\s+github.com/influxdata/influxdb\s+v1\.8\.10'; then
  echo "building InfluxDB 1.8.10 (about 2 minutes)…"
  (cd "$(mktemp -d)" && GOFLAGS=-mod=mod go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10)
fi
echo "influxd: $gobin/influxd (v1.8.10)"
