FROM ubuntu:22.04 AS runtime
