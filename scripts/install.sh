#!/bin/sh
# The one install recipe: `make`, the Dockerfile and CI all run this file.
set -eu
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-test}
EDITABLE=${EDITABLE:--e}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet $EDITABLE ".[$EXTRAS]"
