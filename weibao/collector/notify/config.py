"""notify.yaml: channels (email, webhook, DingTalk, WeCom), per-level routing, retries.

Protection periods, with the extra recipients they add per channel, are set in the calendar file with
their stricter thresholds (``protection_periods``, weibao/collector/contract/calendar_files.py): one place.

Passwords, webhook URLs (DingTalk and WeCom put the access token in them) and signing secrets are
``SecretStr``: given as ``${ENV_VAR}`` or ``${secret:NAME}`` references, they never show in a log line,
an error message or a repr.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from weibao.collector.notify.model import ChangeKind
from weibao.core.errors import ConfigError, Problem
from weibao.core.secrets import load_secrets_file, resolve_refs
from weibao.core.yamlsrc import load_yaml, pydantic_problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Routing(_Strict):
    """Which notifications a channel gets: by level (1 major .. 3 general) and by kind of change."""

    levels: list[Annotated[int, Field(ge=1, le=3)]] = [1, 2, 3]
    changes: list[ChangeKind] = list(ChangeKind)

    def accepts(self, level: int, change: ChangeKind) -> bool:
        return level in self.levels and change in self.changes


class RateLimit(_Strict):
    """A token bucket per channel: ``burst`` messages at once, then ``per_minute`` on average."""

    per_minute: Annotated[float, Field(gt=0)] = 6.0
    burst: Annotated[int, Field(ge=1)] = 3


class _Channel(_Strict):
    routing: Routing = Routing()
    rate: RateLimit = RateLimit()
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    ca_file: Path | None = None  # a private CA for the server's certificate
    verify_tls: bool = True


class EmailChannel(_Channel):
    type: Literal["email"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    starttls: bool = True
    ssl: bool = False  # implicit TLS (port 465)
    username: str | None = None
    password: SecretStr | None = None
    sender: str
    to: Annotated[list[str], Field(min_length=1)]

    @model_validator(mode="after")
    def _auth_needs_tls(self) -> EmailChannel:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.password is not None and not (self.starttls or self.ssl):
            raise ValueError("a password is only sent over TLS: set starttls or ssl")
        if self.starttls and self.ssl:
            raise ValueError("starttls and ssl exclude each other")
        return self


class WebhookChannel(_Channel):
    """``webhook``: our JSON; ``dingtalk``: DingTalk custom robot (markdown, optional signing);
    ``wecom``: WeCom group robot (markdown)."""

    type: Literal["webhook", "dingtalk", "wecom"]
    url: SecretStr
    secret: SecretStr | None = None  # DingTalk "加签" secret
    headers: dict[str, SecretStr] = {}

    @model_validator(mode="after")
    def _secret_only_for_dingtalk(self) -> WebhookChannel:
        if self.secret is not None and self.type != "dingtalk":
            raise ValueError("secret (signing) applies to dingtalk only")
        if not self.url.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return self


Channel = Annotated[EmailChannel | WebhookChannel, Field(discriminator="type")]
_CHANNEL_TYPES: dict[str, type[EmailChannel] | type[WebhookChannel]] = {
    "email": EmailChannel, "webhook": WebhookChannel, "dingtalk": WebhookChannel, "wecom": WebhookChannel}


class DispatchSettings(_Strict):
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    backoff_initial_s: Annotated[float, Field(gt=0)] = 5.0
    backoff_max_s: Annotated[float, Field(gt=0)] = 600.0
    coalesce_after: Annotated[int, Field(ge=1)] = 3  # more pending than this on a channel: one digest
    digest_max: Annotated[int, Field(ge=2, le=100)] = 30
    poll_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0


class NotifyConfig(_Strict):
    secrets_file: Path | None = None
    channels: dict[str, Channel] = {}
    # refused when given: protection periods live in the calendar file (see the module docstring)
    protection: list[object] = []
    dispatch: DispatchSettings = DispatchSettings()

    @field_validator("protection")
    @classmethod
    def _moved(cls, v: list[object]) -> list[object]:
        if v:
            raise ValueError("protection periods are set in the calendar file, with their thresholds: "
                             "protection_periods: [{name, start, end, threshold_factor, notify: {CHANNEL: "
                             "[recipients]}}] (README, Notifications)")
        return v


def load_notify_config(path: Path | str, *, env: Mapping[str, str] | None = None,
                       text: str | None = None) -> NotifyConfig:
    """Load notify.yaml; raises ConfigError naming file, line and key of every problem."""
    path = Path(path)
    env = os.environ if env is None else env
    src = load_yaml(path, text)
    if src.data is None:
        return NotifyConfig()
    if not isinstance(src.data, dict):
        raise ConfigError([Problem(src.file, 1, "", "notify.yaml is a mapping with channels, protection, "
                                                    "dispatch")])
    raw = dict(src.data)
    problems: list[Problem] = []
    secrets: dict[str, str] | None = None
    if raw.get("secrets_file") is not None:
        sfile = Path(str(raw["secrets_file"])).expanduser()
        if not sfile.is_absolute():
            sfile = path.parent / sfile
        raw["secrets_file"] = sfile
        secrets, sproblems = load_secrets_file(sfile)
        problems.extend(src.problem(("secrets_file",), p.message) for p in sproblems)

    def on_problem(p: tuple[str | int, ...], msg: str) -> None:
        problems.append(src.problem(p, msg))

    if isinstance(raw.get("channels"), dict):
        # one channel at a time, by its type, so that errors name channels.NAME.key (no union tag in it)
        for name in list(raw["channels"]):
            before = len(problems)
            ch = raw["channels"][name] = resolve_refs(raw["channels"][name], ("channels", name), env, secrets,
                                                      on_problem)
            if len(problems) > before:
                continue  # an unresolved reference would only cause follow-up errors
            model = _CHANNEL_TYPES.get(str(ch.get("type"))) if isinstance(ch, dict) else None
            if model is None:
                problems.append(src.problem(("channels", name, "type"),
                                            f"type must be one of {sorted(_CHANNEL_TYPES)}"))
                continue
            try:
                model.model_validate(ch)
            except ValidationError as exc:
                problems.extend(pydantic_problems(src, exc, ("channels", name)))
    if problems:
        raw["channels"] = {}  # already reported; still check the rest of the file
    try:
        cfg = NotifyConfig.model_validate(raw)
    except ValidationError as exc:
        channels_reported = bool(problems)
        problems.extend(p for p in pydantic_problems(src, exc)
                        # with the channels left out, every named channel would look unknown
                        if not (channels_reported and "unknown channels" in p.message))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return cfg
