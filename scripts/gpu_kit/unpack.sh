#!/usr/bin/env bash
# Check and unpack what run.sh packed: the SHA-256 of every part, then the parts joined, into
# DEST (pipeline/, runs/).
#
#   bash scripts/gpu_kit/unpack.sh PARTS_DIR DEST
set -euo pipefail

PARTS=${1:?usage: unpack.sh PARTS_DIR DEST}
DEST=${2:?usage: unpack.sh PARTS_DIR DEST}
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
cd "$PARTS"
# 1. every part listed in SHA256SUMS is there and intact
sha256sum --check --quiet SHA256SUMS
# 2. join the parts in their listed order and untar
mapfile -t NAMES < <(awk '{print $2}' SHA256SUMS)
cat "${NAMES[@]}" | tar -xz -C "$DEST"
echo "unpacked ${#NAMES[@]} parts into $DEST"
