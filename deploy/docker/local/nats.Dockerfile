# NATS server (with JetStream) from Debian's packages on the locally built base, standing in
# for the public nats image: the entrypoint is the server, arguments as given by compose.
ARG BASE_IMAGE=billing-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends nats-server wget \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data
EXPOSE 4222 8222
ENTRYPOINT ["nats-server"]
