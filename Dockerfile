# The engine as a container, installed the way the README does it: scripts/serve
# sets up .venv (here with --setup-only), and the image runs `acd serve`.
#
#   docker build -t acd .
#   docker run --rm -p 5060:5060/udp -p 5060:5060/tcp -p 8080:8080 acd
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN useradd --system --create-home --home-dir /home/acd --uid 10001 acd \
    && mkdir -p /opt/acd /var/lib/acd \
    && chown acd:acd /opt/acd /var/lib/acd

WORKDIR /opt/acd
COPY --chown=acd:acd . .
USER acd
RUN bash scripts/serve --setup-only

# Inside the container the engine must listen on every interface, not just
# loopback; the port mapping of `docker run` decides what is reachable.
ENV PATH=/opt/acd/.venv/bin:$PATH \
    ACD_SIP_LISTEN=0.0.0.0 \
    ACD_HTTP_LISTEN=0.0.0.0 \
    ACD_DATA_DIR=/var/lib/acd
VOLUME ["/var/lib/acd"]

EXPOSE 5060/udp 5060/tcp 8080/tcp

# With no --config, acd serve uses config/example.yaml under /opt/acd; mount
# your own file and pass --config to replace it.
CMD ["acd", "serve"]
