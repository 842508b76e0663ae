#!/usr/bin/env bash
# Runs every Go fuzz target in the module for $1 (default 30s) each.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-30s}
# Minimizing a newly interesting input can stall a worker until the default
# 60 s limit, the rest of the run showing "0/sec" (golang/go#48820; seen
# with relay/verify's FuzzDecodePartyTicket after ~18 executions): bound it.
m=${FUZZMINIMIZETIME:-2s}
fail=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz: $pkg $f ($t)"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime "$m" "$pkg" || fail=1
  done
done
exit $fail
