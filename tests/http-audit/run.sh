#!/usr/bin/env bash
# Starts a LeadRank server on a throwaway SQLite file and runs the
# graphql-http GraphQL-over-HTTP server audits against it; fails on any
# audit that is not ok. Installs Node from the distribution's packages when
# it is missing. Expects CARGO_TARGET_DIR (or the default target dir).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm >/dev/null
fi
npm ci --no-audit --no-fund --silent

target="${CARGO_TARGET_DIR:-../../target}"
cargo build -q --locked -p api
work=$(mktemp -d)
port="${AUDIT_PORT:-18089}"
DATABASE_URL="sqlite://$work/audit.db" LEADRANK_BIND="127.0.0.1:$port" \
    LEADRANK_SCHEDULER=false LEADRANK_WEBHOOK_WORKER=false RUST_LOG=warn \
    "$target/debug/leadrank" serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 60); do
    if node -e "fetch('http://127.0.0.1:$port/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; then
        break
    fi
    if ! kill -0 "$server" 2>/dev/null; then cat "$work/server.log" >&2; exit 1; fi
    sleep 0.5
done
node audit.mjs "http://127.0.0.1:$port/graphql"
