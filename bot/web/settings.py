"""The web server's settings, shared by ``reelbot run`` and ``reelbot web``."""

from __future__ import annotations

from pydantic import Field, field_validator

from jobqueue.settings import CoreSettings


class WebSettings(CoreSettings):
    """What the web server needs, on top of where the data lives."""

    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None

    @field_validator("public_url", mode="before")
    @classmethod
    def _public_url(cls, value: object) -> object:
        """An empty ``NAME=`` line means "not set"; the address is kept without a final /."""
        if value == "" or value is None:
            return None
        text = str(value).rstrip("/")
        if not text.startswith(("http://", "https://")):
            raise ValueError("give the full address users reach, like https://clips.example.com")
        return text

    @property
    def web_enabled(self) -> bool:
        return self.web_port != 0
