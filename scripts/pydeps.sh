#!/usr/bin/env bash
# Python packages the test scripts read tuna's output files with (llama.cpp's `gguf` reader and
# numpy), installed outside the repository under $TUNA_PYDEPS_HOME (default
# ~/.cache/tuna/pydeps). Prints the folder to put on PYTHONPATH (the only stdout line).
set -euo pipefail
GGUF_VERSION=0.19.0
dir="${TUNA_PYDEPS_HOME:-$HOME/.cache/tuna/pydeps}/gguf-$GGUF_VERSION"
py="$(command -v python3 || command -v python)"
if ! PYTHONPATH="$dir" "$py" -c "import gguf, numpy" 2>/dev/null; then
  echo "pydeps.sh: installing gguf==$GGUF_VERSION into $dir" >&2
  rm -rf "$dir.partial"
  "$py" -m pip install --quiet --root-user-action=ignore --target "$dir.partial" "gguf==$GGUF_VERSION" >&2
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
fi
echo "$dir"
