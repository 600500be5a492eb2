# blazedit daemon for an NVIDIA GPU.
# PyPI's Linux torch wheel is the CUDA build (it bundles the CUDA runtime libraries); the NVIDIA Container
# Toolkit on the host supplies the driver. Build: `docker compose build`; run: `docker compose up -d`.
FROM python:3.11-slim-bookworm

ARG TORCH_VERSION=2.13.0

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BLAZEDIT_CACHE=/models \
    BLAZEDIT_DEVICE=cuda \
    BLAZEDIT_PORT=8000

# torch first, on its own layer: it is most of the image and changes least often.
RUN pip install "torch==${TORCH_VERSION}"

WORKDIR /opt/blazedit
COPY clients/python clients/python
COPY models models
COPY server server
RUN pip install ./clients/python ./models ./server

RUN useradd --create-home --uid 1000 blazedit \
    && mkdir /models \
    && chown blazedit:blazedit /models
USER 1000
VOLUME ["/models"]
EXPOSE 8000

# Bind loopback unless an API key is set: the daemon refuses any other address without one.
CMD ["sh", "-c", "export BLAZEDIT_HOST=\"${BLAZEDIT_HOST:-${BLAZEDIT_API_KEY:+0.0.0.0}}\"; export BLAZEDIT_HOST=\"${BLAZEDIT_HOST:-127.0.0.1}\"; exec blazedit serve"]
