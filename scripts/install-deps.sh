#!/usr/bin/env bash
# Installs the real components the integration tests talk to, if missing: Mosquitto and Chromium (Debian
# packages), InfluxDB 1.8.10 (built from the Go module proxy with go install) and the browser tests' npm
# dependency (playwright-core, from e2e/browser/package-lock.json). Idempotent; prints what it uses.
set -euo pipefail

missing=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  missing+=(mosquitto)
fi
# The browser tests (e2e/browser_test.go) drive Debian's Chromium, not a browser downloaded by Playwright.
if [ ! -x /usr/bin/chromium ]; then
  missing+=(chromium)
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "${missing[*]} missing: run 'sudo apt-get install ${missing[*]}'" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "mosquitto: $(command -v mosquitto || echo /usr/sbin/mosquitto)"
echo "chromium: /usr/bin/chromium"

browser="$(dirname "$0")/../e2e/browser"
# npm ci only when the lockfile changed since the last install (a copy of it is kept in node_modules).
if ! cmp -s "$browser/package-lock.json" "$browser/node_modules/.installed-lock.json" 2>/dev/null; then
  npm ci --prefix "$browser" --no-audit --no-fund --loglevel=error
  cp "$browser/package-lock.json" "$browser/node_modules/.installed-lock.json"
fi
echo "playwright-core: $(node -p "JSON.parse(require('fs').readFileSync('$browser/node_modules/playwright-core/package.json', 'utf8')).version")"

gobin="$(go env GOPATH)/bin"
# `influxd version` says "unknown" for a go-install build: read the module version from the binary instead.
if [ ! -x "$gobin/influxd" ] || ! go version -m "$gobin/influxd" | grep -qE 'mod\s+github.com/influxdata/influxdb\s+v1\.8\.10'; then
  echo "building InfluxDB 1.8.10 (about 2 minutes)…"
  (cd "$(mktemp -d)" && GOFLAGS=-mod=mod go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10)
fi
echo "influxd: $gobin/influxd (v1.8.10)"
