"""Pydantic models of inventory.yaml: the layers as written and the resolved devices pollers use."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from weibao.core.inventory import Category, Kind, check_address, check_device_name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- credentials -------------------------------------------------------------------------------


class SnmpCredential(Strict):
    type: Literal["snmp"]
    version: Literal["1", "2c", "3"]
    community: SecretStr | None = None
    user: str | None = None
    auth_protocol: Literal["SHA", "SHA-256", "SHA-512"] | None = None
    auth_key: SecretStr | None = None
    priv_protocol: Literal["AES-128", "AES-256"] | None = None
    priv_key: SecretStr | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @model_validator(mode="after")
    def _consistent(self) -> SnmpCredential:
        if self.version in ("1", "2c"):
            if self.community is None:
                raise ValueError("SNMP v1/v2c needs 'community'")
            if self.user or self.auth_key or self.priv_key:
                raise ValueError("SNMP v1/v2c takes only 'community'")
        else:
            if not self.user:
                raise ValueError("SNMPv3 needs 'user'")
            if self.community is not None:
                raise ValueError("SNMPv3 takes no 'community'")
            if (self.auth_protocol is None) != (self.auth_key is None):
                raise ValueError("SNMPv3 needs both 'auth_protocol' and 'auth_key', or neither")
            if (self.priv_protocol is None) != (self.priv_key is None):
                raise ValueError("SNMPv3 needs both 'priv_protocol' and 'priv_key', or neither")
            if self.priv_protocol and not self.auth_protocol:
                raise ValueError("SNMPv3 privacy needs authentication (authPriv)")
            for key in (self.auth_key, self.priv_key):
                if key is not None and len(key.get_secret_value()) < 8:
                    raise ValueError("SNMPv3 keys must be at least 8 characters (RFC 3414)")
        return self

    @property
    def security_level(self) -> str:
        if self.version != "3":
            return "community"
        if self.priv_protocol:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol else "noAuthNoPriv"


class SshCredential(Strict):
    type: Literal["ssh"]
    username: str
    password: SecretStr | None = None
    key_file: Path | None = None
    key_passphrase: SecretStr | None = None
    enable_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _has_secret(self) -> SshCredential:
        if self.password is None and self.key_file is None:
            raise ValueError("SSH credential needs 'password' or 'key_file'")
        return self


Credential = Annotated[SnmpCredential | SshCredential, Field(discriminator="type")]


# --- per-protocol settings (mergeable layers) --------------------------------------------------


class SnmpLayer(Strict):
    enabled: bool | None = None
    credential: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    timeout_s: float | None = Field(None, gt=0, le=60)
    retries: int | None = Field(None, ge=0, le=5)
    profiles: list[str] | None = None
    max_repetitions: int | None = Field(None, ge=1, le=100)
    # the device's SNMPv3 engine ID (its traps are secured with it): hex, 5-32 octets, as the device shows
    # it (80:00:1f:88:80:..., 0x80001f8880...)
    engine_id: str | None = None

    @field_validator("engine_id", mode="before")
    @classmethod
    def _engine_id(cls, v: Any) -> Any:
        if v is None:
            return v
        if not isinstance(v, str):
            raise ValueError("engine_id must be text: the engine ID in hex (quote it)")
        text = v.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValueError("engine_id must be hexadecimal, e.g. 0x80001f8880c0ffee0001") from None
        if not 5 <= len(raw) <= 32:
            raise ValueError(f"engine_id must be 5 to 32 octets (RFC 3411), not {len(raw)}")
        return raw.hex()


class SshLayer(Strict):
    enabled: bool | None = None
    credential: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    platform: str | None = None
    timeout_s: float | None = Field(None, gt=0, le=300)
    known_hosts: Path | None = None
    accept_new_host_keys: bool | None = None


class IcmpLayer(Strict):
    enabled: bool | None = None
    count: int | None = Field(None, ge=1, le=100)
    interval_ms: int | None = Field(None, ge=1, le=10_000)
    timeout_ms: int | None = Field(None, ge=10, le=60_000)


class ScheduleLayer(Strict):
    icmp_s: float | None = Field(None, ge=1)
    snmp_s: float | None = Field(None, ge=5)
    ssh_at: time | None = None
    timeout_s: float | None = Field(None, gt=0)

    @field_validator("ssh_at", mode="before")
    @classmethod
    def _parse_time(cls, v: Any) -> Any:
        # YAML 1.1 reads an unquoted time without a leading zero (2:00, 14:30) as the sexagesimal
        # integer 120, 870; an unquoted H:MM:SS too, and that number can equal some H:MM, so it is refused
        if isinstance(v, bool):
            return v  # yes/no: pydantic refuses it as not a time
        if isinstance(v, int):
            if not 0 <= v < 24 * 60:
                raise ValueError(f"not a time of day (YAML read it as the number {v}); "
                                 "quote it: \"HH:MM\" or \"HH:MM:SS\"")
            return time(v // 60, v % 60)
        return v


class Asset(Strict):
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    location: str | None = None
    warranty_end: date | None = None
    notes: str | None = None


class Layer(Strict):
    """Settings that defaults, a group or a device may set; later layers win."""

    kind: Kind | None = None
    category: Category | None = None
    tags: list[str] | None = None
    depends_on: str | None = None
    snmp: SnmpLayer | None = None
    ssh: SshLayer | None = None
    icmp: IcmpLayer | None = None
    schedule: ScheduleLayer | None = None
    asset: Asset | None = None


class DeviceEntry(Layer):
    name: str
    address: str
    group: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_device_name(v)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return check_address(v)


class InventoryFile(Strict):
    site: str
    secrets_file: Path | None = None
    credentials: dict[str, Credential] = Field(default_factory=dict)
    defaults: Layer = Field(default_factory=Layer)
    groups: dict[str, Layer] = Field(default_factory=dict)
    devices: list[Any]  # each validated as a DeviceEntry by the loader, so one bad device hides no other


# --- resolved -----------------------------------------------------------------------------------


class SnmpSettings(Strict):
    credential_name: str
    credential: SnmpCredential
    port: int = 161
    timeout_s: float = 2.0
    retries: int = 1
    profiles: list[str] | None = None  # None: chosen by sysObjectID / sysDescr
    max_repetitions: int = 25
    engine_id: str | None = None  # lowercase hex (validated in SnmpLayer)


class SshSettings(Strict):
    credential_name: str
    credential: SshCredential
    port: int = 22
    platform: str = "linux"
    timeout_s: float = 20.0
    known_hosts: Path | None = None
    accept_new_host_keys: bool = False


class IcmpSettings(Strict):
    count: int = 5
    interval_ms: int = 20
    timeout_ms: int = 1000


class Schedule(Strict):
    icmp_s: float = 10.0
    snmp_s: float = 60.0
    ssh_at: time = time(2, 0)
    timeout_s: float = 30.0


class Device(Strict):
    """One device under contract, with every layer resolved and every secret loaded."""

    name: str
    address: str
    kind: Kind
    category: Category
    group: str | None = None
    tags: list[str] = Field(default_factory=list)
    depends_on: str | None = None
    snmp: SnmpSettings | None = None
    ssh: SshSettings | None = None
    icmp: IcmpSettings | None = IcmpSettings()
    schedule: Schedule = Schedule()
    asset: Asset = Asset()

    def public(self) -> dict[str, Any]:
        """The device as it may be shown or sent to the collector: no credential, only its name."""
        out: dict[str, Any] = self.model_dump(mode="json", exclude={"snmp", "ssh"})
        out["snmp"] = None if self.snmp is None else self.snmp.model_dump(mode="json", exclude={"credential"})
        out["ssh"] = None if self.ssh is None else self.ssh.model_dump(mode="json", exclude={"credential"})
        return out


class Inventory(Strict):
    site: str
    source: str
    devices: dict[str, Device]

    def select(self, names: list[str] | None) -> list[Device]:
        if not names:
            return list(self.devices.values())
        unknown = [n for n in names if n not in self.devices]
        if unknown:
            raise KeyError(", ".join(unknown))
        return [self.devices[n] for n in names]
