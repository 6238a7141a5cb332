"""The one settings model: environment (PROMPTSPOOL_*), then the settings file, then defaults."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from worker.endpoints.config import Endpoint, check_unique_names
from worker.endpoints.keystore import KeyStore
from worker.jobs.promptformat import AUTO, check_prompt_format
from worker.jobs.spec import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MIN_P,
    DEFAULT_REPEAT_PENALTY,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_K,
    DEFAULT_TOP_P,
    MAX_PROMPT_CHARS,
    SAMPLING_FIELDS,
    MaxTokens,
    MinP,
    RepeatPenalty,
    Temperature,
    Timeout,
    TopK,
    TopP,
)
from worker.jobs.target import RemoteTarget, remote_target
from worker.modelfile.catalog import resolve_model
from worker.paths import AppPaths

DEFAULT_HTTP_PORT = 8765


def _config_file(home: Any = None) -> Path:
    """The settings file: under `home` when given (Settings(home=...)), else under
    PROMPTSPOOL_HOME or the platform's config dir."""
    return AppPaths.resolve(Path(home) if home else None).config_file


class SettingsFileError(ValueError):
    """The settings file cannot be used; the message names it and says why (line, column)."""


class _SettingsFile(JsonConfigSettingsSource):
    """settings.json, read with errors that name the file, the place and the reason."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            text = Path(file_path).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise SettingsFileError(
                f"{file_path}: not UTF-8 text (invalid byte at offset {exc.start})"
            ) from exc
        except OSError as exc:
            raise SettingsFileError(f"{file_path}: cannot be read ({exc.strerror})") from exc
        if not text.strip():
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingsFileError(
                f"{file_path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
        if not isinstance(value, dict):
            raise SettingsFileError(f"{file_path}: expected a JSON object of settings")
        return value


class Settings(BaseSettings):
    """Every knob of PromptSpool, each with a default, bounds and a description."""

    model_config = SettingsConfigDict(
        env_prefix="PROMPTSPOOL_", extra="ignore", validate_assignment=True
    )

    home: Path | None = Field(
        default=None, description="Put every PromptSpool path under this directory."
    )
    redis_url: str | None = Field(
        default=None,
        description="Use this Redis-compatible server instead of the bundled one.",
    )
    model: Path | None = Field(default=None, description="Default GGUF model for new jobs.")
    n_gpu_layers: int = Field(
        default=-1, ge=-1, le=100_000, description="Layers offloaded to the GPU (-1: all)."
    )
    n_ctx: int = Field(default=4096, ge=64, le=1_048_576, description="Context window in tokens.")
    n_batch: int = Field(default=512, ge=8, le=65_536, description="Prompt batch size in tokens.")
    n_threads: int | None = Field(
        default=None, ge=1, le=1024, description="CPU threads for llama.cpp (default: auto)."
    )
    parallel_jobs: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Jobs a worker runs at once, batched on one model, each with n_ctx tokens "
        "(default: 1 on the CPU; on a GPU as many as fit in free VRAM, at most 32).",
    )
    flash_attn: bool | None = Field(
        default=None,
        description="Flash attention (default: llama.cpp decides; on wherever it can run).",
    )
    backend_sampling: bool = Field(
        default=False,
        description="Sample inside llama.cpp's decode graph (experimental in llama.cpp): on a "
        "GPU the logits stay there and a batch's host time per step shrinks.",
    )
    max_tokens: MaxTokens = Field(default=DEFAULT_MAX_TOKENS, description="Default max tokens.")
    temperature: Temperature = Field(
        default=DEFAULT_TEMPERATURE, description="Default temperature."
    )
    top_p: TopP = Field(default=DEFAULT_TOP_P, description="Default nucleus sampling.")
    top_k: TopK = Field(default=DEFAULT_TOP_K, description="Default top-k (0: off).")
    min_p: MinP = Field(default=DEFAULT_MIN_P, description="Default min-p.")
    repeat_penalty: RepeatPenalty = Field(
        default=DEFAULT_REPEAT_PENALTY, description="Default repeat penalty."
    )
    job_timeout: Timeout = Field(
        default=3600.0, description="Default per-job time limit in seconds."
    )
    max_attempts: int = Field(
        default=3, ge=1, le=100, description="Attempts lost to dying workers before a job fails."
    )
    heartbeat_ttl: float = Field(
        default=10.0,
        ge=1.0,
        le=600.0,
        allow_inf_nan=False,
        description="Seconds without a heartbeat = worker lost.",
    )
    stream_flush_ms: float = Field(
        default=25.0,
        ge=1.0,
        le=1000.0,
        allow_inf_nan=False,
        description="Batch streamed tokens this long (ms).",
    )
    cli_server: bool = Field(
        default=True,
        description="Keep a warm process for short commands (list, show, submit, ...): they "
        "start in tens of milliseconds instead of hundreds; it leaves after 10 idle minutes.",
    )
    retention_days: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Forget finished jobs after this many days (None: keep).",
    )
    model_dirs: list[Path] = Field(
        default_factory=list,
        description="Folders whose GGUF files are offered as models (by file name) to the "
        "HTTP API and the window.",
    )
    http_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the HTTP API listens on (anything but loopback needs TLS or "
        "http_insecure).",
    )
    http_port: int = Field(
        default=DEFAULT_HTTP_PORT, ge=0, le=65_535, description="HTTP API port (0: no HTTP API)."
    )
    http_tls_cert: Path | None = Field(default=None, description="TLS certificate for the API.")
    http_tls_key: Path | None = Field(default=None, description="Its private key.")
    http_insecure: bool = Field(
        default=False,
        description="Serve plain HTTP on an address other than loopback (anyone on the network "
        "who learns the token can use the queue).",
    )
    http_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the API answers to besides its own address (DNS rebinding guard).",
    )
    http_cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the API (CORS)."
    )
    http_max_upload_mb: float = Field(
        default=200.0,
        gt=0,
        le=10_000,
        allow_inf_nan=False,
        description="Largest request body or uploaded file the API takes, in MB.",
    )
    http_rate_limit_rpm: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="Requests a minute each API token may make (None: no limit); more are "
        "answered 429 with Retry-After.",
    )
    endpoints: list[Endpoint] = Field(
        default_factory=list,
        description="Remote OpenAI-compatible APIs: a job whose model is 'NAME/MODEL' runs "
        "MODEL on the endpoint NAME.",
    )
    remote_max_tries: int = Field(
        default=8,
        ge=1,
        le=100,
        description="Tries of a remote job that a rate limit (429), an overloaded endpoint "
        "(5xx) or a lost connection interrupts, before it fails.",
    )
    remote_read_timeout: float = Field(
        default=120.0,
        ge=1.0,
        le=3600.0,
        allow_inf_nan=False,
        description="Seconds a remote endpoint may stay silent in the middle of an answer "
        "before that try counts as broken off (and is tried again).",
    )
    remote_slots: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Remote jobs a remote worker runs at once (each endpoint's own limit "
        "still holds).",
    )
    system_prompt: str = Field(
        default="",
        max_length=MAX_PROMPT_CHARS,
        description="System prompt for new jobs (empty: none).",
    )
    prompt_format: str = Field(
        default=AUTO,
        description="Prompt format for new jobs: 'auto' (the model's chat template, else raw "
        "text), 'raw', or a llama.cpp built-in template such as 'chatml'.",
    )
    notifications: bool = Field(default=True, description="Notify when jobs finish.")
    notify_sound: bool = Field(default=False, description="Play a sound with notifications.")
    keep_in_tray: bool = Field(default=True, description="Closing the window keeps the queue.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        home = getattr(init_settings, "init_kwargs", {}).get("home")
        return (
            init_settings,
            env_settings,
            _SettingsFile(settings_cls, json_file=_config_file(home)),
        )

    def job_defaults(self) -> dict[str, Any]:
        """The JobSpec fields every new job starts from, however it is queued (the command
        line, the window, dropped files): the default model, when set, and the sampling."""
        defaults: dict[str, Any] = {name: getattr(self, name) for name in SAMPLING_FIELDS}
        if self.model is not None:
            defaults["model"] = str(self.model)
        if self.system_prompt.strip():
            defaults["system"] = self.system_prompt
        if self.prompt_format != AUTO:
            defaults["prompt_format"] = self.prompt_format
        return defaults

    @field_validator("prompt_format")
    @classmethod
    def _known_prompt_format(cls, value: str) -> str:
        return check_prompt_format(value)

    @model_validator(mode="after")
    def _endpoint_names_differ(self) -> Settings:
        check_unique_names(self.endpoints)
        return self

    # --- endpoints ----------------------------------------------------------------------

    @property
    def keys(self) -> KeyStore:
        return KeyStore(self.paths.config)

    @property
    def endpoint_names(self) -> frozenset[str]:
        return frozenset(e.name for e in self.endpoints)

    def endpoint(self, name: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.name == name), None)

    def endpoint_key(self, endpoint: Endpoint) -> str | None:
        """The key to send to `endpoint` (see Endpoint.key), from the key store last."""
        if endpoint.api_key is not None or endpoint.api_key_env:
            return endpoint.key()
        return endpoint.key(self.keys.get(endpoint.name))

    def remote_target(self, model: str) -> RemoteTarget | None:
        """The endpoint and model that `model` names when its first part is an endpoint of
        these settings (`lab/qwen2.5-7b`), else None (a local model)."""
        target = remote_target(model)
        return target if target is not None and self.endpoint(target.endpoint) else None

    def resolve_model(self, name: str) -> str:
        """What a request's model names, as a job's `model`: `NAME/MODEL` of an endpoint as
        it is, else the local file (see modelfile.catalog.resolve_model; UnknownModel)."""
        if self.remote_target(name) is not None:
            return name
        return str(resolve_model(name, self.model, self.model_dirs))

    @property
    def paths(self) -> AppPaths:
        return AppPaths.resolve(self.home)

    def save(self) -> Path:
        """Write the fields that differ from the defaults to the settings file (atomically)."""
        path = self.paths.config_file
        path.parent.mkdir(parents=True, exist_ok=True)
        for endpoint in self.endpoints:  # keys go to the key store, never to the file
            if endpoint.api_key is not None:
                self.keys.set(endpoint.name, endpoint.api_key.get_secret_value())
        data: dict[str, Any] = self.model_dump(
            mode="json", exclude_defaults=True, exclude={"endpoints": {"__all__": {"api_key"}}}
        )
        data.pop("home", None)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def load_settings(**overrides: Any) -> Settings:
    """Settings from env and the settings file, with explicit overrides on top."""
    return Settings(**overrides)


class SettingsFile:
    """Settings that follow their file: `current()` reads it again when it has changed (a
    worker takes endpoints edited in the window for its next job, without a restart). A
    file that cannot be used now keeps the last good settings (and says why in the log)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stamp = self._file_stamp()

    def current(self) -> Settings:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._settings = load_settings(home=self._settings.home)
            except (ValueError, SettingsFileError) as exc:
                logging.getLogger(__name__).warning("settings not reloaded: %s", exc)
        return self._settings

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self._settings.paths.config_file.stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)
