FROM debian:12 AS builder
RUN echo built > /built.txt
FROM debian:12
COPY --from=builder /built.txt /built.txt
