#!/usr/bin/env bash
# CI step: a new user's install. A fresh venv, `pip install <checkout>` with no extras, then
# memory, verify and run --board qemu-m7 on the bundled KWS model; each must end in a JSON line
# that reports success. Takes a few minutes (pip fetches TVM, TFLite Micro, onnxruntime), so it
# runs once in CI (in the README's test command, before pytest). Usage: tests/fresh_install.sh [VENV_DIR]
set -euo pipefail
checkout="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$(mktemp -d)/venv}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q "$checkout"
model="$checkout/models/kws_ref_model.tflite"
cd "$work"  # not the checkout: the installed package must be the one imported

check() {  # check FIELD EXPECTED COMMAND...: the last stdout line is JSON with FIELD == EXPECTED
    local field=$1 expected=$2
    shift 2
    local last
    last=$("$venv/bin/tvm-tinyml" "$@" | tail -n 1)
    "$venv/bin/python" -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if str(r[sys.argv[2]]) == sys.argv[3] else f"{sys.argv[2]} = {r[sys.argv[2]]!r}")' \
        "$last" "$field" "$expected"
    echo "ok: tvm-tinyml $*"
}

check model kws_ref_model memory "$model" --target stm32f746 --json
check passed True verify "$model" --inputs 5 --json
check passed True run "$model" --board qemu-m7 --inputs 2 --json
"$venv/bin/python" -m tvm_tinyml --version
