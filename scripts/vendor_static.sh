#!/usr/bin/env bash
# Vendor the web app's third-party front-end files into src/cadsearch/web/static/vendor/.
#
# The vendored files are committed, so running the app needs no build step and no network; run this script only
# to upgrade them. It fetches packages from the npm registry with `npm pack` into a temporary folder (nothing is
# installed globally and no node_modules is left behind) and copies the one distributable file we use plus its
# licence.
#
# Usage: scripts/vendor_static.sh [MODEL_VIEWER_VERSION]   (default: the pinned version below)
set -euo pipefail

MODEL_VIEWER_VERSION="${1:-4.4.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/src/cadsearch/web/static/vendor"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

command -v npm >/dev/null || { echo "error: npm is needed (Debian: apt-get install npm)" >&2; exit 2; }

# <model-viewer>: a self-contained web component (three.js bundled inside) for the interactive 3D view.
(cd "$TMP" && npm pack --silent "@google/model-viewer@${MODEL_VIEWER_VERSION}" >/dev/null)
tar -xzf "$TMP"/google-model-viewer-*.tgz -C "$TMP"
mkdir -p "$DEST"
cp "$TMP/package/dist/model-viewer.min.js" "$DEST/model-viewer.min.js"
cp "$TMP/package/LICENSE" "$DEST/model-viewer.LICENSE"
printf '@google/model-viewer %s (Apache-2.0), dist/model-viewer.min.js, from the npm registry\n' \
    "$MODEL_VIEWER_VERSION" > "$DEST/VERSIONS.txt"
echo "vendored @google/model-viewer ${MODEL_VIEWER_VERSION} into $DEST"
ls -l "$DEST"
