#!/usr/bin/env bash
# Vendor the viewer's JavaScript from the npm registry into viewer/static/vendor.
#
#   bash scripts/vendor_js.sh            # fetch what is missing or wrong, verify checksums
#   bash scripts/vendor_js.sh --force    # fetch again even if present
#
# The page never loads anything from a CDN: deck.gl's standalone bundle and the
# loaders.gl MVT worker (whose version must match the MVT loader inside that
# bundle, 4.4.3 for deck.gl 9.4.0) are served by the app from this folder.
# The files are committed too, so a clone works without npm; this script
# re-creates or upgrades them and checks them against the pinned sha256 sums.
set -euo pipefail

DECK_VERSION=9.4.0
MVT_VERSION=4.4.3
DECK_SHA=2eb6a1ae0d58604b1378682cd1136f8793478ba801e43dae48b3807e48758a6b
MVT_SHA=dd05d983bb13345c69bd745514f579e5e0d09164119dccc68dbbca0ddf255afc

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$here/viewer/static/vendor"
force=0
[[ "${1:-}" == "--force" ]] && force=1
mkdir -p "$dest"

check() {  # file sha
    [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]
}

if [[ $force == 0 ]] && check "$dest/deck.gl.min.js" "$DECK_SHA" && check "$dest/mvt-worker.js" "$MVT_SHA"; then
    echo "vendor_js: deck.gl $DECK_VERSION and @loaders.gl/mvt $MVT_VERSION worker present and verified"
    exit 0
fi

command -v npm >/dev/null || { echo "vendor_js: npm is needed to fetch deck.gl (apt-get install npm)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(
    cd "$tmp"
    npm pack --silent "deck.gl@$DECK_VERSION" "@loaders.gl/mvt@$MVT_VERSION" >/dev/null
    mkdir deck mvt
    tar xzf "deck.gl-$DECK_VERSION.tgz" -C deck
    tar xzf "loaders.gl-mvt-$MVT_VERSION.tgz" -C mvt
)
install -m 644 "$tmp/deck/package/dist.min.js" "$dest/deck.gl.min.js"
install -m 644 "$tmp/deck/package/LICENSE" "$dest/LICENSE.deck.gl.txt"
install -m 644 "$tmp/mvt/package/dist/mvt-worker.js" "$dest/mvt-worker.js"
install -m 644 "$tmp/mvt/package/LICENSE" "$dest/LICENSE.loaders.gl.txt" 2>/dev/null || true
for f in deck.gl.min.js:$DECK_SHA mvt-worker.js:$MVT_SHA; do
    name="${f%%:*}"; sum="${f##*:}"
    if ! check "$dest/$name" "$sum"; then
        echo "vendor_js: checksum of $name is $(sha256sum "$dest/$name" | cut -d' ' -f1), expected $sum" >&2
        exit 1
    fi
done
echo "vendor_js: vendored deck.gl $DECK_VERSION and @loaders.gl/mvt $MVT_VERSION worker into $dest"
