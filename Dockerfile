# courseprogress: the same thing `make run` serves, as a container.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    GUNICORN_BIND=0.0.0.0:8000

RUN groupadd --system app && useradd --system --gid app --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app

# Requirements in their own layer, so code changes do not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=app:app . .
# collectstatic needs settings but no database; the key is for the build step only.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input --verbosity 0

USER app
EXPOSE 8000
# /healthz by address over plain HTTP, on the port of GUNICORN_BIND: it answers whatever
# ALLOWED_HOSTS and SECURE_SSL_REDIRECT say (README, "Docker").
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "config/healthcheck.py"]

# Migrations (and the demo set) run as a release step: docker compose runs them before the app.
CMD ["gunicorn", "-c", "config/gunicorn.conf.py"]
