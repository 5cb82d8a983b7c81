#!/usr/bin/env bash
# Builds dist/echo.wasm with the nsbox Python SDK (guest-sdk/python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
exec bash ../../../guest-sdk/python/nsbox-build.sh src/echo.py -o dist/echo.wasm
