#!/usr/bin/env bash
# Build llama-cpp-python from its sdist once (about 10 minutes on 2 cores) and keep the wheel in a cache
# outside the clone; later set-ups install it from there in seconds.
set -euo pipefail
PIP=${1:?pip path}
WHEELS=${2:?wheel cache dir}
VERSION=0.3.36
mkdir -p "$WHEELS"
if ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  echo "llama-cpp-python $VERSION: cached wheel in $WHEELS"
  exit 0
fi
echo "llama-cpp-python $VERSION: building from source (once; about 10 minutes on 2 cores)"
# portable CPU build: no -march=native, no libcurl
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAVA_BUILD=OFF}" "$PIP" wheel -q --no-deps -w "$WHEELS" "llama-cpp-python==$VERSION"
