FROM debian:12
RUN --mount=type=bind,source=x.sh,target=/x.sh sh /x.sh
