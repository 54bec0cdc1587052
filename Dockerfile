# The engine as a container, installed the way the README does it: scripts/serve
# sets up .venv (here with --setup-only), and the image runs `acd serve`.
#
#   docker build -t acd .
#   docker run --rm -p 5060:5060/udp -p 5060:5060/tcp -p 8080:8080 \
#       -p 20000-20199:20000-20199/udp -e ACD_RTP_PORTS=20000-20199 acd
#
# BASE is any Debian-like image with Python 3.11 or newer: the official Python
# image by default; tests/test_container.py builds on a Debian bookworm made
# by mmdebstrap and imported, since these machines cannot pull images.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

# What the engine needs from the system, as root, only what the base lacks:
# espeak-ng for spoken-text prompts, a C compiler and Python's headers for
# the media fast path (ACD_REQUIRE_NATIVE below makes its absence an error).
RUN missing=""; \
    command -v espeak-ng >/dev/null || missing="$missing espeak-ng"; \
    command -v cc >/dev/null || missing="$missing gcc libc6-dev"; \
    python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
        || missing="$missing python3-dev"; \
    python3 -c 'import ensurepip' 2>/dev/null || missing="$missing python3-venv"; \
    if [ -n "$missing" ]; then \
        apt-get update -q && apt-get install -y -q --no-install-recommends $missing \
        && rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --system --create-home --home-dir /home/acd --uid 10001 acd \
    && mkdir -p /opt/acd /var/lib/acd \
    && chown acd:acd /opt/acd /var/lib/acd

WORKDIR /opt/acd
COPY --chown=acd:acd . .
USER acd
RUN ACD_REQUIRE_NATIVE=1 bash scripts/serve --setup-only

# Inside the container the engine must listen on every interface, not just
# loopback; the port mapping of `docker run` decides what is reachable. Via,
# Contact and SDP then carry the container's own address: set
# sip.advertised_address (a mounted config) to the address phones reach.
ENV PATH=/opt/acd/.venv/bin:$PATH \
    ACD_SIP_LISTEN=0.0.0.0 \
    ACD_HTTP_LISTEN=0.0.0.0 \
    ACD_DATA_DIR=/var/lib/acd
VOLUME ["/var/lib/acd"]

# SIP, HTTP, SIP over WebSocket for the browser phone (8088; its page is
# built into the image when the build context has acd/web/static, which
# scripts/build-web makes), and RTP: publish the range ACD_RTP_PORTS (or media.rtp_ports)
# names, UDP, one port pair per call leg.
EXPOSE 5060/udp 5060/tcp 8080/tcp 8088/tcp 20000-29999/udp

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${ACD_HTTP_PORT:-8080}/healthz', timeout=2)"

# SIGTERM drains calls for up to calls.drain_timeout (30 s): stop with more
# (docker stop -t 40). With no --config, acd serve uses config/example.yaml
# under /opt/acd; mount your own file and pass --config to replace it.
STOPSIGNAL SIGTERM
CMD ["acd", "serve"]
