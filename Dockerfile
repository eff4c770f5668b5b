# bpftail image: built from the project's sources on Debian 12, run with the host's /var/log
# and Docker's containers directory mounted read-only. The same image is the rootfs of the
# Docker logging plugin (scripts/docker-plugin.sh, `bpftail -docker-plugin`).
# Without a registry, scripts/docker-base.sh makes the two base images locally; build with the
# classic builder (`docker build --network host .` on an engine without a bridge).
FROM debian:12 AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler \
      libsnappy-dev libjansson-dev libyaml-dev libmicrohttpd-dev libre2-dev libbpf-dev clang \
      llvm bpftool libcap-dev libsystemd-dev zlib1g-dev libssl-dev ca-certificates && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DBT_TESTS=OFF -DCMAKE_BUILD_TYPE=Release && cmake --build /build -j"$(nproc)" --target bpftail

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libcurl4 libprotobuf-c1 libsnappy1v5 libjansson4 libyaml-0-2 libmicrohttpd12 libre2-9 \
      libbpf1 libcap2 libsystemd0 zlib1g libssl3 ca-certificates tzdata && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/bpftail /var/lib/bpftail-plugin /run/docker/plugins /run/docker/logging \
 && groupadd --system --gid 10001 bpftail \
 && useradd --system --uid 10001 --gid bpftail --home-dir /var/lib/bpftail --shell /usr/sbin/nologin bpftail \
 && chown root:bpftail /var/lib/bpftail && chmod 0770 /var/lib/bpftail
COPY --from=build /build/bpftail /usr/bin/bpftail
COPY config/bpftail.yaml /etc/bpftail/config.yaml
# Not root by default: receivers (syslog, GELF, the push API) and readable logs need nothing
# more. Reading the host's root-only logs and loading BPF need root with CAP_DAC_READ_SEARCH
# and the BPF capabilities: the compose stack and the Kubernetes DaemonSet ask for user 0 and
# exactly those capabilities. The Docker plugin runs from its own config.json, as root.
# /var/lib/bpftail (a named volume copies its owner and mode) is root's and the bpftail group's:
# root without CAP_DAC_OVERRIDE writes it as its owner, the user bpftail through the group.
USER bpftail
EXPOSE 9080
ENTRYPOINT ["/usr/bin/bpftail"]
CMD ["-config.file=/etc/bpftail/config.yaml", "-config.expand-env=true"]
