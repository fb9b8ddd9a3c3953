"""The one settings object. Every field is read from a ``WORKBENCH_*`` variable.

Unknown ``WORKBENCH_*`` variables are an error, so a typo never silently falls
back to a default.

>>> s = Settings(kafka_port=29092)
>>> s.bootstrap
'127.0.0.1:29092'
>>> s.embedded
True
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "WORKBENCH_"


class SettingsError(ValueError):
    """Raised for a bad or unknown ``WORKBENCH_*`` variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # WORKBENCH_HOME: state directory (broker data and logs, pids, records).
    home: Path = Field(default_factory=lambda: Path.home() / ".workbench")
    # WORKBENCH_CACHE_DIR: downloaded jars live here, outside any repo.
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "workbench")

    # WORKBENCH_BOOTSTRAP_SERVERS: an external cluster; when set nothing is started.
    bootstrap_servers: str | None = None
    # WORKBENCH_SECURITY_PROTOCOL: passed to every client (external clusters).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # WORKBENCH_SASL_MECHANISM / _USERNAME / _PASSWORD: SASL credentials.
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    # WORKBENCH_SSL_CA_LOCATION / _CERTIFICATE_LOCATION / _KEY_LOCATION: TLS files.
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None

    # WORKBENCH_KAFKA_PORT / _CONTROLLER_PORT: embedded broker listeners on 127.0.0.1.
    kafka_port: int = Field(default=19092, ge=1024, le=65535)
    controller_port: int = Field(default=19093, ge=1024, le=65535)
    # WORKBENCH_KAFKA_HEAP_MB: embedded broker JVM heap; capped at 512.
    kafka_heap_mb: int = Field(default=384, ge=128, le=512)
    # WORKBENCH_KAFKA_VERSION: must match workbench/stack/pom.xml.
    kafka_version: str = "4.1.1"
    # WORKBENCH_STARTUP_TIMEOUT_S: how long `stack up` waits for readiness.
    startup_timeout_s: float = Field(default=90.0, gt=0)

    # WORKBENCH_EVENTS_TOPIC / _PARTITIONS: the clickstream topic.
    events_topic: str = "events"
    partitions: int = Field(default=3, ge=1, le=64)
    # WORKBENCH_MAX_EVENT_BYTES: schema size limit; larger payloads go to the DLQ.
    max_event_bytes: int = Field(default=64 * 1024, ge=1024)

    # WORKBENCH_TAP_MAX_ROWS / _MAX_BYTES: ring-buffer bounds of a tap.
    tap_max_rows: int = Field(default=100_000, ge=1)
    tap_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    # WORKBENCH_TAP_REFRESH_S: widget redraw throttle.
    tap_refresh_s: float = Field(default=0.5, gt=0)

    # WORKBENCH_DATABASE_URL: records (evaluations, skew checks, promotions); any SQLAlchemy URL.
    database_url: str | None = None

    # WORKBENCH_FEATURE_REPO: the production Feast feature repo; one folder per environment.
    feature_repo: Path | None = None
    # WORKBENCH_ENV: the environment `promote`, `jobs` and `rollback` act on by default.
    env: Literal["local", "production"] = "local"
    # WORKBENCH_FEAST_PROJECT: the Feast project name (Redis keys and SQLite tables carry it).
    feast_project: str = Field(default="workbench", pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    # WORKBENCH_REDIS_URL: the production profile's online store.
    redis_url: str = "redis://127.0.0.1:6379/0"
    # WORKBENCH_JOB_COMMIT_INTERVAL_S: feature jobs' checkpoint interval (online writes happen at each).
    job_commit_interval_s: float = Field(default=0.2, gt=0, le=60)
    # WORKBENCH_JOB_MAX_RESTARTS: crashes within JOB_RESTART_WINDOW_S before a job is reported failed.
    job_max_restarts: int = Field(default=5, ge=0)
    job_restart_window_s: float = Field(default=300.0, gt=0)

    # WORKBENCH_MLFLOW_URI: the model store's MLflow tracking/registry URI (a tracking server such as
    # http://mlflow:5000, or a SQL database); unset: sqlite:///<home>/mlflow.db, artifacts in <home>/mlartifacts.
    mlflow_uri: str | None = None

    # WORKBENCH_JUPYTER_PORT: JupyterLab port for `workbench up`.
    jupyter_port: int = Field(default=8888, ge=1024, le=65535)

    def __init__(self, **values: Any) -> None:
        known = {ENV_PREFIX + name.upper() for name in type(self).model_fields}
        unknown = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}; see workbench/config.py")
        super().__init__(**values)

    @property
    def embedded(self) -> bool:
        """True when Workbench runs its own broker."""
        return not self.bootstrap_servers

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    @property
    def state_dir(self) -> Path:
        return self.home

    @property
    def db_url(self) -> str:
        """SQLite under the state dir unless a URL (e.g. Postgres) is configured."""
        return self.database_url or f"sqlite:///{self.home / 'workbench.db'}"

    @property
    def repo_root(self) -> Path:
        """The feature repo root; ``<repo_root>/<env>`` is one Feast repo."""
        return self.feature_repo or self.home / "feature_repo"

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka settings shared by every client Workbench creates."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        if self.security_protocol != "PLAINTEXT":
            conf["security.protocol"] = self.security_protocol
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
        }
        conf.update({k: str(v) for k, v in optional.items() if v is not None})
        return conf


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def reload() -> Settings:
    """Re-read the environment (tests change it)."""
    settings.cache_clear()
    return settings()
