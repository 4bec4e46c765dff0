FROM debian:12
RUN --mount=type=secret,id=CONDA_TOKEN cat /run/secrets/CONDA_TOKEN
