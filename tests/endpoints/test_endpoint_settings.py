"""Endpoints in the settings: validated at load, keys kept out of the settings file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from worker.endpoints.keystore import KeyStore
from worker.settings import Settings, load_settings


def test_endpoints_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTSPOOL_ENDPOINTS",
                       '[{"name": "lab", "base_url": "http://host:8080/v1/"}]')  # fmt: skip
    settings = load_settings()
    [lab] = settings.endpoints
    assert (lab.name, lab.base_url, lab.max_concurrency) == ("lab", "http://host:8080/v1", 4)
    assert settings.remote_target("lab/qwen") is not None
    assert settings.remote_target("other/qwen") is None
    assert settings.resolve_model("lab/qwen") == "lab/qwen"


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"name": "lab", "base_url": "ftp://host"}, "endpoints.0.base_url"),
        ({"name": "bad name", "base_url": "http://h/v1"}, "endpoints.0.name"),
        ({"name": "lab", "base_url": "http://h/v1", "max_concurrency": 0},
         "endpoints.0.max_concurrency"),
        ({"name": "lab", "base_url": "http://h/v1", "colour": "red"}, "endpoints.0.colour"),
        ({"base_url": "http://h/v1"}, "endpoints.0.name"),
    ],
)  # fmt: skip
def test_a_malformed_entry_is_refused_with_its_field(
    isolated_home: Path, entry: dict[str, object], field: str
) -> None:
    config = isolated_home / "config" / "settings.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"endpoints": [entry]}))
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert field in str(caught.value)


def test_two_endpoints_may_not_share_a_name() -> None:
    lab = {"name": "lab", "base_url": "http://h/v1"}
    with pytest.raises(ValidationError, match="two endpoints are named 'lab'"):
        Settings(endpoints=[lab, lab])


def test_saving_moves_keys_to_the_key_store(isolated_home: Path) -> None:
    settings = Settings(endpoints=[{"name": "lab", "base_url": "http://h/v1",
                                    "api_key": "sk-very-secret"}])  # fmt: skip
    path = settings.save()
    assert "sk-very-secret" not in path.read_text()
    again = load_settings()
    [lab] = again.endpoints
    assert lab.api_key is None
    assert again.endpoint_key(lab) == "sk-very-secret"
    store = KeyStore(isolated_home / "config", use_keyring=False)
    assert store.get("lab") == "sk-very-secret"
    assert stat.S_IMODE(store.file.stat().st_mode) == 0o600
    assert "sk-very-secret" not in repr(settings)


def test_a_key_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_KEY", "from-env")
    settings = Settings(endpoints=[{"name": "lab", "base_url": "http://h/v1",
                                    "api_key_env": "LAB_KEY"}])  # fmt: skip
    settings.keys.set("lab", "stored")
    assert settings.endpoint_key(settings.endpoints[0]) == "from-env"


def test_the_key_store_sets_and_deletes(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "config", use_keyring=False)
    assert store.get("lab") is None
    store.set("lab", "k1")
    store.set("other", "k2")
    store.delete("lab")
    assert (store.get("lab"), store.get("other")) == (None, "k2")
    store.set("other", "")
    assert store.get("other") is None
    assert stat.S_IMODE(store.file.stat().st_mode) == 0o600
