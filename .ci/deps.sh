#!/usr/bin/env bash
# Installs what UNFED's tests and demo need and a bare Debian machine lacks.
# Idempotent: anything already present is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need=()
command -v obfs4proxy >/dev/null 2>&1 || need+=(obfs4proxy)
# tor and tor-gencert: the Tor tests' private Tor network (testnet --tor).
{ command -v tor || [ -x /usr/sbin/tor ]; } >/dev/null 2>&1 && command -v tor-gencert >/dev/null 2>&1 || need+=(tor)
command -v curl >/dev/null 2>&1 || need+=(curl)
# A C compiler for cgo: github.com/mattn/go-sqlite3, the share-chain store (sharechain/).
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# Headless Chromium for the explorer's browser test (TestExplorerInChromium).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]} from Debian"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The openai npm package for the OpenAI-client interoperability test.
nodedir=client/openai/testdata/node
if [ -f "$nodedir/package-lock.json" ] && [ ! -d "$nodedir/node_modules/openai" ]; then
  echo "deps: npm ci in $nodedir"
  (cd "$nodedir" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "deps: ok (obfs4proxy $(command -v obfs4proxy), tor $(command -v tor || echo /usr/sbin/tor), node $(node --version), $(chromium --version 2>/dev/null))"
