#!/usr/bin/env bash
# Python packages the test scripts use, installed outside the repository under
# $TUNA_PYDEPS_HOME (default ~/.cache/tuna/pydeps), each pinned in a folder of its own:
# llama.cpp's `gguf` reader and numpy (to read tuna's output files), and the `openai` client
# (to drive `tuna serve`). Prints the PYTHONPATH that holds them (the only stdout line).
set -euo pipefail
GGUF_VERSION=0.19.0
OPENAI_VERSION=3.63.0
home="${TUNA_PYDEPS_HOME:-$HOME/.cache/tuna/pydeps}"
py="$(command -v python3 || command -v python)"

# install FOLDER IMPORTS PACKAGE: PACKAGE into FOLDER unless IMPORTS already import from it.
install() {
  local dir="$1" imports="$2" package="$3"
  if ! PYTHONPATH="$dir" "$py" -c "import $imports" 2>/dev/null; then
    echo "pydeps.sh: installing $package into $dir" >&2
    rm -rf "$dir.partial"
    "$py" -m pip install --quiet --root-user-action=ignore --target "$dir.partial" "$package" >&2
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
  fi
}

install "$home/gguf-$GGUF_VERSION" "gguf, numpy" "gguf==$GGUF_VERSION"
install "$home/openai-$OPENAI_VERSION" "openai" "openai==$OPENAI_VERSION"
echo "$home/gguf-$GGUF_VERSION:$home/openai-$OPENAI_VERSION"
