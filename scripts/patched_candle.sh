#!/usr/bin/env bash
# Prepares patched/candle-core: candle-core as published on crates.io with tuna's one change to
# its backward pass (patches/candle-core-backprop.patch: the first gradient that reaches a tensor
# is kept as it is instead of being added to a zero-filled buffer), which the workspace uses
# through [patch.crates-io] in Cargo.toml. Takes the crate from cargo's download cache, else from
# crates.io, and checks it against the checksum below. Does nothing when the folder is already
# the current patch's. Runs before the first cargo command (quickstart.sh, test.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION=0.11.1
SHA256=d11c8be87cfbaef9ebb62fb3f850d1fc8e00cc1d11d393fdbe55a4d5c2cdb325
PATCH=patches/candle-core-backprop.patch
DEST=patched/candle-core
want="$VERSION $(sha256sum "$PATCH" | cut -d' ' -f1)"
if [ -f "$DEST/.tuna-patch" ] && [ "$(cat "$DEST/.tuna-patch")" = "$want" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/candle-core-$VERSION.crate 2>/dev/null | head -1 || true)
if [ -z "$crate" ] || ! echo "$SHA256  $crate" | sha256sum -c --quiet - 2>/dev/null; then
  crate="$tmp/candle-core.crate"
  curl -fsSL --retry 3 -o "$crate" "https://static.crates.io/crates/candle-core/candle-core-$VERSION.crate"
fi
echo "$SHA256  $crate" | sha256sum -c --quiet -
tar -xzf "$crate" -C "$tmp"
patch -s -p1 -d "$tmp/candle-core-$VERSION" < "$PATCH"
echo "$want" > "$tmp/candle-core-$VERSION/.tuna-patch"
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
mv "$tmp/candle-core-$VERSION" "$DEST"
echo "patched candle-core $VERSION in $DEST" >&2
