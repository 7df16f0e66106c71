import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own SSLCORE_HOME: no test reads or writes ~/.sslcore."""
    monkeypatch.setenv("SSLCORE_HOME", str(tmp_path / "sslcore_home"))
