#!/usr/bin/env bash
# Regenerate layerkit/build/_proto/ from the hand-written layerkit/build/proto/*.proto.
# Needs only grpcio-tools (its bundled protoc and google/protobuf includes), not make.
# The output is committed, so users never need grpcio-tools at runtime.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/layerkit/build/proto
out=$root/layerkit/build/_proto

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m grpc_tools.protoc -I "$src" \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  "$src"/*.proto

# protoc emits top-level imports ("import buildkit_ops_pb2"), which only work with
# the output dir on sys.path. Make them package-relative; leave google.* alone.
mods=$(for f in "$src"/*.proto; do basename "$f" .proto; done | paste -sd'|')
sed -E -i \
  -e "s/^import (($mods)_pb2(_grpc)?) as /from . import \1 as /" \
  "$tmp"/*.py "$tmp"/*.pyi

# Generated code is not mypy --strict clean (untyped grpc stubs, bare Mapping in
# .pyi, Message is Any without types-protobuf); mypy follows imports into it even
# though pyproject excludes the directory, so silence it per file. The .pyi types
# still reach our code.
for f in "$tmp"/*.py "$tmp"/*.pyi; do sed -i '1i # mypy: ignore-errors' "$f"; done

# protoc writes a *_pb2_grpc.py for every file, even ones without services.
for f in "$tmp"/*_pb2_grpc.py; do grep -qE '^class [A-Za-z]+Stub' "$f" || rm -f "$f"; done

cat >"$tmp/__init__.py" <<'PY'
"""Generated BuildKit protobuf/gRPC modules. Do not edit: run scripts/gen_protos.sh."""
PY
rm -rf "$out"
mkdir -p "$out"
cp "$tmp"/*.py "$tmp"/*.pyi "$out"/
files=("$out"/*)
echo "generated ${#files[@]} files in ${out#"$root"/}"
