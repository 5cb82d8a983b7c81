#!/usr/bin/env bash
# Builds dist/hostile.wasm with the nsbox Python SDK (guest-sdk/python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
exec bash ../../../guest-sdk/python/nsbox-build.sh src/hostile.py -o dist/hostile.wasm
