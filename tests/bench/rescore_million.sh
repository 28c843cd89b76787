#!/usr/bin/env bash
# The nightly job at a million leads: loads a demo tenant of LEADS leads
# (10 activities each; about 7 in 8 are open) on DATABASE_URL, then runs
# rescore-bench, which times the job and, in the same run on the same
# database, its floor: every open lead row read once and one bulk UPDATE
# of score and tier. Peak memory comes from /usr/bin/time.
#
#   DATABASE_URL=postgres://… bash tests/bench/rescore_million.sh [LEADS] [SLUG]
set -euo pipefail
leads=${1:-1000000}
slug=${2:-million}
: "${DATABASE_URL:?set DATABASE_URL to the database to load and re-score}"
cd "$(dirname "$0")/../.."
cargo build --release -p api -p tests --bins
/usr/bin/time -f "demo load: %e s, peak RSS %M KB" target/release/leadrank demo --tenant "$slug" --leads "$leads"
/usr/bin/time -f "job and floor: %e s, peak RSS %M KB" target/release/rescore-bench --tenant "$slug"
