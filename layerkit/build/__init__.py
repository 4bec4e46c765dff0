"""BuildKit integration: our own gRPC client (no buildx, no docker CLI at build time).

- transport: gRPC channels to buildkitd (unix/tcp) or a Docker engine's embedded BuildKit.
- llb: tiny LLB graph builder (serialized ops + digests).
- client: typed wrapper over the Control service (workers, info, capabilities, solve).

The generated protobuf modules live in _proto/ (scripts/gen_protos.sh from proto/).
"""
