# The incident-intel stream worker. Build: docker build -t incident-intel .
# Run:   docker run -e INTEL_BOOTSTRAP_SERVERS=kafka:9092 -p 6066:6066 incident-intel
# Without INTEL_BOOTSTRAP_SERVERS the worker starts its embedded broker (memory only).
# The policy is the one shipped in the package, linked at /srv/incident-intel/policy;
# to use your own, mount a directory there (or elsewhere and set INTEL_POLICY_DIR).
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# What the wheel is built from; the default policy and the topic catalog are
# package data under app/defaults.
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/incident-intel

COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && ln -s "$(python -c 'from app.policyfile import bundled_policy_dir; print(bundled_policy_dir())')" \
       /srv/incident-intel/policy

RUN useradd --system --uid 10001 --home-dir /var/lib/incident-intel --create-home intel \
    && mkdir -p /var/lib/incident-intel/reports \
    && chown -R intel:intel /var/lib/incident-intel
USER intel

# Listen on all interfaces inside the container; state and digests under one volume.
ENV INTEL_WEB_HOST=0.0.0.0 \
    INTEL_WEB_PORT=6066 \
    INTEL_DATA_DIR=/var/lib/incident-intel \
    INTEL_POLICY_DIR=/srv/incident-intel/policy \
    INTEL_REPORTS_DIR=/var/lib/incident-intel/reports
VOLUME ["/var/lib/incident-intel"]
EXPOSE 6066

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('INTEL_WEB_PORT', '6066'), timeout=4)"]

# SIGTERM (docker stop) makes the worker leave its consumer group and flush.
STOPSIGNAL SIGTERM
ENTRYPOINT ["incident-intel"]
CMD ["run"]
