#!/usr/bin/env bash
# Checks deploy/prometheus with promtool (Debian's `prometheus` package):
#   - `promtool check rules alerts.yml`;
#   - `promtool check config prometheus.yml`, on a copy whose tls_config
#     names real files: a CA and a `user prometheus --role viewer`
#     certificate made by deploy/pki.sh in a temporary directory (check
#     config refuses certificate files that do not exist);
#   - `promtool test rules alerts_test.yml`: each alert fires on the series
#     meant to fire it, with its labels and annotations, and not on the
#     others.
# Exits 77 (ctest's skip) when promtool is not installed.
#
# usage: check.sh [SOURCE_DIR]   (default: the tree this script is in)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
src="${1:-$(cd "$here/../.." && pwd)}"
prom="$src/deploy/prometheus"

if ! command -v promtool >/dev/null 2>&1; then
  echo "check.sh: promtool not found; install Debian's prometheus package" \
       "(apt-get install prometheus) to check deploy/prometheus" >&2
  exit 77
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

promtool check rules "$prom/alerts.yml"

# The configuration as shipped names /etc/prometheus/fabric/...; point it at
# the real files in $tmp, and nothing else changes.
"$src/deploy/pki.sh" init "$tmp/pki" >/dev/null
"$src/deploy/pki.sh" issue "$tmp/pki" user prometheus --role viewer >/dev/null
sed "s|/etc/prometheus/fabric/|$tmp/pki/|g" "$prom/prometheus.yml" \
    >"$tmp/prometheus.yml"
if cmp -s "$prom/prometheus.yml" "$tmp/prometheus.yml"; then
  echo "check.sh: prometheus.yml no longer names /etc/prometheus/fabric/" >&2
  exit 1
fi
cp "$prom/alerts.yml" "$tmp/"
promtool check config "$tmp/prometheus.yml"

promtool test rules "$prom/alerts_test.yml"
