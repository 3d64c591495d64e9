# Hyperion's one image: the three services and the CLI; docker/entrypoint.sh picks which runs.
#
#   docker build -t hyperion .
#   docker run --rm hyperion cli --help
#
# Build on the official Swift image for Debian 12 with the C libraries' -dev packages; link the
# Swift runtime statically (--static-swift-stdlib) so the runtime stage is plain debian:bookworm-slim
# with only the C libraries' runtime packages.

FROM swift:6.3.1-bookworm AS build
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends librabbitmq-dev libjansson-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The context has no .git: `hyperion --version` takes its commit from this argument
# (docker build --build-arg HYPERION_GIT_COMMIT=$(git rev-parse --short=12 HEAD); compose passes it).
ARG HYPERION_GIT_COMMIT=
# One product at a time: later ones reuse the modules the earlier ones built.
RUN set -eu; \
    for product in hyperion partition-planner scheduler stage-worker link-emulator; do \
        swift build -c release --static-swift-stdlib --product "$product"; \
    done; \
    bin=$(swift build -c release --static-swift-stdlib --show-bin-path); \
    mkdir -p /out; \
    for product in hyperion partition-planner scheduler stage-worker link-emulator; do \
        install -m 0755 "$bin/$product" /out/; \
    done

FROM debian:bookworm-slim AS runtime
# libstdc++6 is already in the base image; it is listed because the static Swift runtime still links it.
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends librabbitmq4 libjansson4 libstdc++6 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 hyperion \
    && useradd --system --uid 10001 --gid hyperion --home-dir /var/lib/hyperion --create-home \
        --shell /usr/sbin/nologin hyperion \
    && mkdir -p /models /etc/hyperion \
    && chown hyperion:hyperion /models
COPY --from=build /out/ /usr/local/bin/
COPY docker/entrypoint.sh /usr/local/bin/hyperion-entrypoint
COPY scripts/broker-users docker/fetch-model.py /usr/local/share/hyperion/
COPY examples/local-topology.json /etc/hyperion/topology.json
ENV HYPERION_MODEL=/models/SmolLM2-135M-Instruct.Q4_1.gguf \
    HYPERION_TOPOLOGY=/etc/hyperion/topology.json
USER hyperion
WORKDIR /var/lib/hyperion
ENTRYPOINT ["/usr/local/bin/hyperion-entrypoint"]
CMD ["--help"]
