#!/usr/bin/env bash
# nsbox-build.sh ENTRY.py [-o OUT.wasm] [--wit DIR]: turns a tenant written with the
# `nsbox` package (this directory) into a component of the nsbox:tenant world, with
# componentize-py (pinned in requirements.txt, installed on first use in a virtualenv:
# $NSBOX_PYTHON_VENV, or ~/.cache/nsbox-python).
set -euo pipefail
sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage="usage: nsbox-build.sh ENTRY.py [-o OUT.wasm] [--wit DIR]"
entry="" out="" wit=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o|--out) out="${2:?$usage}"; shift 2 ;;
    --wit) wit="${2:?$usage}"; shift 2 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) [ -z "$entry" ] || { echo "$usage" >&2; exit 2; }; entry="$1"; shift ;;
  esac
done
[ -n "$entry" ] && [ -f "$entry" ] || { echo "$usage" >&2; exit 2; }
entry_dir="$(cd "$(dirname "$entry")" && pwd)"
module="$(basename "$entry" .py)"
[[ "$module" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { echo "nsbox-build.sh: $entry: the file name must be a Python module name" >&2; exit 2; }
out="${out:-dist/$module.wasm}"

# The contract: --wit, else the nearest wit/ above the entry (a checkout of nsbox), else the SDK's repository's.
if [ -z "$wit" ]; then
  dir="$entry_dir"
  while [ "$dir" != / ] && [ ! -f "$dir/wit/tenant.wit" ]; do dir="$(dirname "$dir")"; done
  if [ -f "$dir/wit/tenant.wit" ]; then wit="$dir/wit"; else wit="$sdk/../../wit"; fi
fi
[ -f "$wit/tenant.wit" ] || { echo "nsbox-build.sh: no wit/tenant.wit (the nsbox:tenant contract) found; pass --wit DIR" >&2; exit 1; }

venv="${NSBOX_PYTHON_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/nsbox-python}"
wanted="$(sed -n 's/^componentize-py==//p' "$sdk/requirements.txt")"
if [ "$("$venv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $wanted" ]; then
  echo "nsbox-build.sh: installing componentize-py $wanted in $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$sdk/requirements.txt"
fi

started=$(date +%s%N)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The tenant's module first (its top level registers the handlers), then the exports.
printf 'import %s  # noqa: F401\nfrom nsbox.exports import BroadcastHandlers, ClusterHandlers, Handlers, RecoveryHandlers  # noqa: F401\n' "$module" > "$tmp/nsbox_entry.py"
mkdir -p "$(dirname "$out")"
"$venv/bin/componentize-py" -d "$wit" -w tenant componentize nsbox_entry \
  -p "$tmp" -p "$sdk" -p "$entry_dir" -o "$out" >/dev/null
awk -v bytes="$(stat -c %s "$out")" -v ns="$(( $(date +%s%N) - started ))" -v out="$out" \
  'BEGIN { printf "nsbox-build.sh: %s (%.1f MB, %.1f s)\n", out, bytes / 1e6, ns / 1e9 }'
