"""Settings shared by every process: the worker, the bot and the command line.

Read once at an entry point (``reelbot ...`` or ``python -m jobqueue``) from the environment
and ``.env``, then handed down as plain arguments: library code never reads the environment.
Every field has a line in ``.env.example``; a test keeps the two in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.rewrite.config import RewriterConfig

if TYPE_CHECKING:
    from jobqueue.safety import SafetyPolicy
    from pipeline.clip import ModelChoice
    from pipeline.preview import PreviewOptions
    from pipeline.provenance import SigningIdentity
    from pipeline.safety import SafetyConfig

MIB = 1024 * 1024
BROKER_SCHEMES = ("redis://", "rediss://", "postgres://", "postgresql://")

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class BadSetting(Exception):
    """A setting in the environment or ``.env`` is not valid; ``str(error)`` names it."""


def read_settings(kind: type[SettingsT]) -> SettingsT:
    """``kind`` read from the environment and ``.env``; raises :class:`BadSetting`."""
    try:
        return kind()
    except ValidationError as exc:
        raise BadSetting(invalid_setting(kind, exc)) from exc


def invalid_setting(kind: type[BaseSettings], error: ValidationError) -> str:
    """The first error as a sentence naming what the user set: the environment variable
    (``REELBOT_WEB_PORT``), not the field (``web_port``)."""
    first = error.errors()[0]
    # A validator's own sentence, without the "Value error, " pydantic puts before it.
    reason = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:
        # A rule over several settings; its sentence names them.
        return f"The settings are not valid: {reason}."
    return f"The setting {env_name(kind, str(first['loc'][0]))} is not valid: {reason}."


def env_name(kind: type[BaseSettings], key: str) -> str:
    """The variable that sets ``key`` of ``kind``: a field's name with the prefix, or, for a
    field read under several names (``DISCORD_TOKEN`` or ``REELBOT_DISCORD_TOKEN``), the one
    the user set; pydantic reports the first name whichever was set."""
    field = kind.model_fields.get(key)
    if field is None:
        return _alias_set(kind, key) or key.upper()
    if field.validation_alias is not None:
        return key.upper()
    return f"{kind.model_config.get('env_prefix', '')}{key}".upper()


def _alias_set(kind: type[BaseSettings], alias: str) -> str | None:
    """Of the names of the field that ``alias`` names, the one set in the environment (or
    else in ``.env``), as the user wrote it."""
    for field in kind.model_fields.values():
        choices = field.validation_alias
        if isinstance(choices, AliasChoices) and alias in choices.choices:
            names = [str(choice) for choice in choices.choices]
            return _first_set(names, os.environ) or _first_set(names, _dotenv(kind))
    return None


def _first_set(names: list[str], values: Mapping[str, str | None]) -> str | None:
    present = {name.upper(): name for name in values}
    return next((present[name.upper()] for name in names if name.upper() in present), None)


def _dotenv(kind: type[BaseSettings]) -> dict[str, str | None]:
    env_file = kind.model_config.get("env_file")
    if not isinstance(env_file, str | Path) or not Path(env_file).is_file():
        return {}
    return dotenv_values(env_file)


class CoreSettings(BaseSettings):
    """What a worker needs: where state lives, which models run, queue limits."""

    model_config = SettingsConfigDict(
        env_prefix="REELBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path("data")
    database: Path | None = None
    log_level: str = "INFO"

    model: str = "wan2.1-t2v-1.3b"
    i2v_model: str = "wan2.1-i2v-14b-480p"
    end_frame_model: str = "wan2.1-flf2v-14b-720p"
    device: str = "auto"
    cpu_offload: bool = False
    max_upload_bytes: int = 10 * MIB
    storyboard_crossfade_s: float = Field(default=0.3, ge=0)

    step_cache: Literal["preset", "off", "first-block", "taylorseer", "mag"] = "preset"
    attention: Literal["preset", "native", "flash", "flash3", "sage", "cudnn"] = "preset"
    compile: bool = False
    vae_tiling: bool = False
    vae_slicing: bool = False
    group_offload: bool = False
    lora: str = ""
    lora_scale: float = 1.0
    fuse_lora: bool = False
    previews: bool = True
    preview_every_steps: int = Field(default=2, ge=1)
    preview_width: int = Field(default=320, ge=64, le=1024)

    rewriter: Literal["local", "openai", "off"] = "local"
    rewriter_model: str = "auto"
    rewriter_timeout_s: float = 60.0
    rewriter_device: str = "auto"
    rewriter_max_tokens: int = 220
    openai_base_url: str = "http://localhost:11434/v1"
    openai_model: str = "qwen2.5:3b-instruct"
    openai_api_key: str = Field(default="", repr=False)
    openai_api: Literal["auto", "chat", "completions"] = "auto"
    openai_vision: Literal["auto", "on", "off"] = "auto"
    enhance_default: bool = True
    rewriters: int = Field(default=1, ge=0)

    max_waiting_per_user: int = 5
    max_running_per_user: int = 1
    max_daily_per_user: int = 0
    max_queue: int = 200
    lease_seconds: float = 60.0
    max_attempts: int = 3
    workers: int = 0

    broker_url: str = Field(default="", repr=False)
    broker_max_bytes: int = Field(default=64 * MIB, ge=MIB)
    unserved_wait_minutes: float = Field(default=30.0, ge=0)
    worker_models: str = ""
    worker_max_size: str = ""

    safety_mode: Literal["withhold", "spoiler", "off"] = "withhold"
    safety_classifiers: str = "nudenet,opennsfw"
    safety_frames: int = Field(default=12, ge=1, le=81)
    safety_thresholds: str = ""
    safety_strikes: bool = False
    safety_if_unchecked: Literal["withhold", "post"] = "withhold"

    provenance_key: Path | None = None
    provenance_cert: Path | None = None

    @field_validator("provenance_key", "provenance_cert", mode="before")
    @classmethod
    def _empty_path_is_none(cls, value: object) -> object:
        """An empty ``NAME=`` line in .env means "not set"."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _key_with_its_certificate(self) -> CoreSettings:
        if (self.provenance_key is None) != (self.provenance_cert is None):
            raise ValueError(
                "set both REELBOT_PROVENANCE_KEY and REELBOT_PROVENANCE_CERT, or neither"
            )
        return self

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        value = value.strip()
        if value and not value.lower().startswith(BROKER_SCHEMES):
            raise ValueError("use a redis:// or postgresql:// address, or leave it empty")
        return value

    @field_validator("worker_max_size")
    @classmethod
    def _size_reads(cls, value: str) -> str:
        parse_video_size(value)
        return value

    @field_validator("safety_classifiers")
    @classmethod
    def _some_classifier(cls, value: str) -> str:
        if not split_list(value):
            raise ValueError("name at least one classifier (nudenet, opennsfw or module:factory)")
        return value

    @field_validator("safety_thresholds")
    @classmethod
    def _thresholds_read(cls, value: str) -> str:
        parse_thresholds(value)
        return value

    @property
    def database_path(self) -> Path:
        return self.database or self.data_dir / "reelbot.db"

    @property
    def clips_dir(self) -> Path:
        return self.data_dir / "clips"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    def model_choice(self) -> ModelChoice:
        """The video models these settings name, and where they run."""
        # Imported here: pipeline.clip brings torch, which reading settings does not need.
        from pipeline.clip import ModelChoice
        from pipeline.levers import LeverSettings

        return ModelChoice(
            models_dir=self.models_dir,
            t2v_model=self.model,
            i2v_model=self.i2v_model,
            end_frame_model=self.end_frame_model,
            device=self.device,
            cpu_offload=self.cpu_offload,
            levers=LeverSettings(
                step_cache=self.step_cache,
                attention=self.attention,
                compile=self.compile,
                vae_tiling=self.vae_tiling,
                vae_slicing=self.vae_slicing,
                group_offload=self.group_offload,
                lora=self.lora,
                lora_scale=self.lora_scale,
                fuse_lora=self.fuse_lora,
            ),
        )

    def preview_options(self) -> PreviewOptions | None:
        """How live previews are made, or None when they are off."""
        from pipeline.preview import PreviewOptions

        if not self.previews:
            return None
        return PreviewOptions(every_steps=self.preview_every_steps, width=self.preview_width)

    def signing_identity(self) -> SigningIdentity:
        """The key and certificate clips are signed with: the owner's, or reelbot's own
        (made on first use under ``data/provenance/``)."""
        from pipeline.provenance import SigningIdentity

        if self.provenance_key is not None and self.provenance_cert is not None:
            return SigningIdentity(self.provenance_key, self.provenance_cert)
        return SigningIdentity.in_data_dir(self.data_dir)

    def safety_config(self) -> SafetyConfig:
        """The classifiers every clip goes through, and how many frames they look at."""
        from pipeline.safety import SafetyConfig

        return SafetyConfig(
            classifiers=tuple(split_list(self.safety_classifiers)), frames=self.safety_frames
        )

    def safety_policy(self) -> SafetyPolicy:
        """The policy of every server that has not set its own with /admin safety."""
        from jobqueue.safety import IfUnchecked, SafetyMode, SafetyPolicy

        return SafetyPolicy(
            mode=SafetyMode(self.safety_mode),
            thresholds=parse_thresholds(self.safety_thresholds),
            strikes=self.safety_strikes,
            if_unchecked=IfUnchecked(self.safety_if_unchecked),
        )

    def rewriter_config(self) -> RewriterConfig:
        """The prompt rewriter these settings describe."""
        return RewriterConfig(
            backend=self.rewriter,
            local_model=self.rewriter_model,
            models_dir=self.models_dir,
            cache_dir=self.cache_dir,
            openai_base_url=self.openai_base_url,
            openai_model=self.openai_model,
            openai_api_key=self.openai_api_key,
            openai_api=self.openai_api,
            openai_vision=self.openai_vision,
            timeout_s=self.rewriter_timeout_s,
            device=self.rewriter_device,
            max_new_tokens=self.rewriter_max_tokens,
        )


def parse_video_size(value: str) -> int | None:
    """``"832x480x81"`` (width x height x frames) as its pixel count over all frames; None
    for an empty value (any size)."""
    if not value.strip():
        return None
    parts = value.lower().replace(" ", "").split("x")
    if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"{value!r} is not like 832x480x81 (width x height x frames)")
    width, height, frames = (int(part) for part in parts)
    return width * height * frames


def split_list(value: str) -> list[str]:
    """``"a, b,c"`` as ``["a", "b", "c"]``: how people write lists in a .env file."""
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_thresholds(value: str) -> dict[str, float]:
    """``"nudity=0.4, nsfw=0.8"`` as a dict; each threshold from 0 to 1."""
    thresholds: dict[str, float] = {}
    for part in split_list(value):
        category, equals, number = part.partition("=")
        try:
            threshold = float(number)
        except ValueError:
            threshold = -1.0
        if not equals or not category.strip() or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"{part!r} is not like nudity=0.5 (a threshold from 0 to 1)")
        thresholds[category.strip()] = threshold
    return thresholds
