# segstream worker image: slim, non-root, dependencies in their own layer.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/segstream

# Dependencies first: this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY README.md ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /srv/segstream segstream \
    && mkdir -p /var/lib/segstream \
    && chown segstream /var/lib/segstream

USER segstream
# In a container the web port must listen beyond loopback; the broker comes from the environment.
ENV SEGSTREAM_WEB_HOST=0.0.0.0 \
    SEGSTREAM_DATA_DIR=/var/lib/segstream
EXPOSE 6066
ENTRYPOINT ["segstream"]
CMD ["worker"]
