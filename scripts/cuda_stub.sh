#!/usr/bin/env bash
# Writes a stub driver library, DIR/libcuda.so (soname libcuda.so.1), defining every driver
# entry point that cudarc declares, each returning CUDA_ERROR_STUB_LIBRARY (34). Linking needs
# it where no driver is installed; with it on LD_LIBRARY_PATH a cuda build behaves as on a
# machine whose driver is missing, which the CPU suite uses to test that error.
set -euo pipefail
dir="$1"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sys="$(cd "$repo" && cargo metadata --format-version 1 --features tuna/cuda 2>/dev/null |
  python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"))')"
sys="$(dirname "$sys")/src/driver/sys/mod.rs"
mkdir -p "$dir"
grep -o '^pub unsafe fn cu[A-Za-z0-9_]*' "$sys" | sed 's/^pub unsafe fn //' | sort -u |
  awk '{ print "int " $1 "(void) { return 34; }" }' >"$dir/libcuda_stub.c"
cc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$dir/libcuda.so" "$dir/libcuda_stub.c"
ln -sf libcuda.so "$dir/libcuda.so.1"
echo "cuda stub: $(wc -l <"$dir/libcuda_stub.c") entry points in $dir/libcuda.so"
