# A build stage's base on CI: the Debian base plus the host's CA bundle, which pip needs to reach PyPI from here.
# Only build stages use it; deploy/Dockerfile copies nothing but the venv out of one.
ARG BASE
FROM ${BASE}
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_DEFAULT_TIMEOUT=180 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
