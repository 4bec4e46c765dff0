FROM ubuntu:22.04
COPY . /src
