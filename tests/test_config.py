import pytest

from workbench.config import Settings, SettingsError


def test_unknown_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_KAFAK_PORT", "1")
    with pytest.raises(SettingsError, match="WORKBENCH_KAFAK_PORT"):
        Settings()


def test_heap_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_KAFKA_HEAP_MB", "2048")
    with pytest.raises(ValueError, match="kafka_heap_mb"):
        Settings()


def test_external_cluster_passes_security_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_BOOTSTRAP_SERVERS", "kafka.example:9093")
    monkeypatch.setenv("WORKBENCH_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("WORKBENCH_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("WORKBENCH_SASL_USERNAME", "alice")
    s = Settings()
    assert not s.embedded
    conf = s.kafka_config()
    assert conf["bootstrap.servers"] == "kafka.example:9093"
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.username"] == "alice"
