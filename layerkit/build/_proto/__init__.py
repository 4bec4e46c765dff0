"""Generated BuildKit protobuf/gRPC modules. Do not edit: run scripts/gen_protos.sh."""
