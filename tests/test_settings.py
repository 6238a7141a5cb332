"""Settings and paths: env prefix, PROMPTSPOOL_HOME, the settings file, bounds."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from worker.jobs.spec import SAMPLING_FIELDS, JobSpec
from worker.jobs.validation import field_bounds
from worker.paths import AppPaths
from worker.queue.connection import QueueAddress, QueueUnavailable
from worker.settings import Settings, load_settings


def test_home_puts_every_path_under_it(isolated_home: Path) -> None:
    paths = load_settings().paths.ensure()
    for path in (paths.data, paths.runtime, paths.logs, paths.config):
        assert path.is_relative_to(isolated_home)
    assert stat.S_IMODE(paths.runtime.stat().st_mode) == 0o700


def test_env_overrides_file_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.max_tokens == 512
    settings.max_tokens = 77
    settings.temperature = 0.3
    settings.save()
    assert load_settings().max_tokens == 77
    monkeypatch.setenv("PROMPTSPOOL_MAX_TOKENS", "9")
    reloaded = load_settings()
    assert reloaded.max_tokens == 9
    assert reloaded.temperature == 0.3


def test_file_keeps_only_changed_values(isolated_home: Path) -> None:
    settings = load_settings()
    settings.n_ctx = 2048
    text = settings.save().read_text()
    assert '"n_ctx": 2048' in text
    assert "max_tokens" not in text


def test_out_of_range_setting_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTSPOOL_TEMPERATURE", "50")
    with pytest.raises(ValidationError, match="temperature"):
        Settings()


def test_socket_and_password_address(isolated_home: Path) -> None:
    with pytest.raises(QueueUnavailable, match="promptspool serve"):
        QueueAddress.resolve(load_settings())
    address = QueueAddress.for_socket("/run/x/server.sock", "p@ss/word")
    assert address.redis_url == "unix://:p%40ss%2Fword@/run/x/server.sock"
    assert address.celery_url == "redis+socket://:p%40ss%2Fword@/run/x/server.sock"
    assert QueueAddress.from_url("redis://host:6379/0").celery_url == "redis://host:6379/0"


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a dir to another user needs root")
def test_runtime_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    paths = AppPaths.resolve(tmp_path)
    paths.runtime.mkdir(parents=True)
    os.chown(paths.runtime, 12345, 12345)
    with pytest.raises(PermissionError, match="another user"):
        paths.ensure()


def test_new_jobs_start_from_the_settings_with_the_specs_bounds(tmp_path: Path) -> None:
    """One definition: the settings' defaults for new jobs are JobSpec's, with its bounds."""
    for name in SAMPLING_FIELDS:
        assert field_bounds(Settings, name) == field_bounds(JobSpec, name), name
        assert Settings.model_fields[name].default == JobSpec.model_fields[name].default, name
    settings = Settings(home=tmp_path, min_p=0.3, repeat_penalty=1.4)
    defaults = settings.job_defaults()
    assert set(defaults) == set(SAMPLING_FIELDS)  # no model set: none given
    assert (defaults["min_p"], defaults["repeat_penalty"]) == (0.3, 1.4)
    model = tmp_path / "m.gguf"
    assert Settings(home=tmp_path, model=model).job_defaults()["model"] == str(model)
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Settings(home=tmp_path, min_p=1.5)
