"""Load inventory.yaml: strict parsing, secret resolution, defaults -> group -> device merge, cross-checks."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from weibao.agent.inventory.model import (
    Credential,
    Device,
    DeviceEntry,
    Inventory,
    InventoryFile,
    Layer,
    SnmpCredential,
    SnmpSettings,
    SshCredential,
    SshSettings,
)
from weibao.core.errors import ConfigError, Problem
from weibao.core.secrets import load_secrets_file, resolve_refs
from weibao.core.yamlsrc import Located, load_yaml, pydantic_problems

_NESTED = ("snmp", "ssh", "icmp", "schedule", "asset")
_CREDENTIAL: TypeAdapter[Credential] = TypeAdapter(Credential)


def _merge(layers: list[Layer]) -> dict[str, Any]:
    """defaults -> group -> device: scalars and nested keys of later layers win; tags accumulate."""
    out: dict[str, Any] = {}
    tags: list[str] = []
    for layer in layers:
        d = layer.model_dump(exclude_unset=True, exclude_none=False)
        for key, value in d.items():
            if key == "tags":
                tags.extend(t for t in (value or []) if t not in tags)
            elif key in _NESTED and isinstance(value, dict):
                out.setdefault(key, {})
                if out[key] is None:
                    out[key] = {}
                out[key].update({k: v for k, v in value.items()})
            else:
                out[key] = value
    out["tags"] = tags
    return out


def _find_cycles(deps: Mapping[str, str | None]) -> list[list[str]]:
    cycles: list[list[str]] = []
    seen: set[str] = set()
    for start in deps:
        chain: list[str] = []
        node: str | None = start
        while node is not None and node in deps and node not in seen:
            if node in chain:
                cyc = chain[chain.index(node):]
                if not any(set(cyc) == set(c) for c in cycles):
                    cycles.append(cyc)
                break
            chain.append(node)
            node = deps[node]
        seen.update(chain)
    return cycles


def load_inventory(path: Path | str, *, env: Mapping[str, str] | None = None,
                   text: str | None = None) -> Inventory:
    """Load and resolve an inventory; raises ConfigError listing every problem with file, line and key."""
    path = Path(path)
    env = os.environ if env is None else env
    src = load_yaml(path, text)
    problems: list[Problem] = []

    if not isinstance(src.data, dict):
        raise ConfigError([Problem(src.file, 1, "", "an inventory is a mapping with site, credentials, "
                                                    "defaults, groups and devices")])
    raw = dict(src.data)

    secrets: dict[str, str] | None = None
    secrets_failed = False
    if raw.get("secrets_file") is not None:
        sfile = Path(str(raw["secrets_file"])).expanduser()
        if not sfile.is_absolute():
            sfile = path.parent / sfile
        secrets, sproblems = load_secrets_file(sfile)
        secrets_failed = bool(sproblems)
        problems.extend(src.problem(("secrets_file",), p.message) for p in sproblems)

    def on_problem(p: tuple[str | int, ...], msg: str) -> None:
        problems.append(src.problem(p, msg))

    # Each section, credential, group and device is validated on its own, so that one mistake hides no
    # other; what depends on a broken part is skipped rather than reported a second time.
    credentials: dict[str, Credential] = {}
    broken: set[str] = set()
    raw_creds = raw.pop("credentials", None)
    if raw_creds is not None and not isinstance(raw_creds, dict):
        problems.append(src.problem(("credentials",), "credentials is a mapping of name to credential"))
    for name, item in (raw_creds or {}).items():
        item = resolve_refs(item, ("credentials", name), env, secrets, on_problem, secrets_failed=secrets_failed)
        try:
            credentials[name] = _CREDENTIAL.validate_python(item)
        except ValidationError as exc:
            problems.extend(pydantic_problems(src, exc, ("credentials", name)))
            broken.add(name)
    groups: dict[str, Layer] = {}
    raw_groups = raw.pop("groups", None)
    if raw_groups is not None and not isinstance(raw_groups, dict):
        problems.append(src.problem(("groups",), "groups is a mapping of name to settings"))
    for name, item in (raw_groups or {}).items():
        try:
            groups[name] = Layer.model_validate(item or {})
        except ValidationError as exc:
            problems.extend(pydantic_problems(src, exc, ("groups", name)))
            broken.add(name)
    raw_devices = raw.pop("devices", None)
    entries: list[tuple[int, DeviceEntry]] = []
    if not isinstance(raw_devices, list):
        problems.append(src.problem(("devices",) if raw_devices is not None else (),
                                    "devices is a list of devices" if raw_devices is not None
                                    else "devices: required key is missing"))
        raw_devices = []
    for i, item in enumerate(raw_devices):
        try:
            entries.append((i, DeviceEntry.model_validate(item)))
        except ValidationError as exc:
            problems.extend(pydantic_problems(src, exc, ("devices", i)))
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                broken.add(item["name"])
    try:
        doc = InventoryFile.model_validate({**raw, "devices": []})
    except ValidationError as exc:
        problems.extend(pydantic_problems(src, exc))
        doc = InventoryFile.model_construct(site="?", defaults=Layer(), devices=[])
        broken.add("defaults")
    doc = doc.model_copy(update={"credentials": credentials, "groups": groups})

    devices = _resolve(doc, entries, src, problems, broken)
    if problems:
        raise ConfigError(problems)
    return Inventory(site=doc.site, source=str(path), devices=devices)


def _resolve(doc: InventoryFile, entries: list[tuple[int, DeviceEntry]], src: Located,
             problems: list[Problem], broken: set[str]) -> dict[str, Device]:
    """Merge the layers of every device and cross-check names; ``broken`` parts were reported already."""
    report = problems
    if "defaults" in broken:
        problems = []  # a device built on broken defaults would only repeat the same mistake
    devices: dict[str, Device] = {}
    first_line: dict[str, int | None] = {}
    for i, entry in entries:
        where = ("devices", i)
        if entry.name in first_line:
            report.append(src.problem((*where, "name"),
                                        f"duplicate device {entry.name!r} (first on line {first_line[entry.name]})"))
            continue
        first_line[entry.name] = src.line_of((*where, "name"))
        layers: list[Layer] = [doc.defaults]
        if entry.group is not None:
            if entry.group not in doc.groups:
                if entry.group not in broken:
                    report.append(src.problem((*where, "group"), f"unknown group {entry.group!r}"))
                continue
            layers.append(doc.groups[entry.group])
        layers.append(entry)
        device = _device(entry, _merge(layers), doc, src, where, problems, broken)
        if device is not None:
            devices[device.name] = device
            if device.snmp is not None and device.snmp.profiles:
                for name in _unknown_profiles(device.snmp.profiles):
                    path = (*where, "snmp", "profiles")
                    problems.append(src.problem(path if path in src.lines else where,
                                                f"unknown SNMP profile {name!r}"))

    problems = report
    for i, entry in entries:
        dev = devices.get(entry.name)
        if dev is None or dev.depends_on is None or first_line[entry.name] != src.line_of(("devices", i, "name")):
            continue
        if dev.depends_on not in first_line and dev.depends_on not in broken:
            problems.append(src.problem(("devices", i, "depends_on"),
                                        f"depends_on names unknown device {dev.depends_on!r}"))
        elif dev.depends_on == dev.name:
            problems.append(src.problem(("devices", i, "depends_on"), "a device cannot depend on itself"))
    deps = {n: d.depends_on for n, d in devices.items()}
    for cyc in _find_cycles(deps):
        if len(cyc) < 2:
            continue
        idx = next(i for i, e in entries if e.name == cyc[0])
        problems.append(src.problem(("devices", idx, "depends_on"),
                                    "depends_on cycle: " + " -> ".join([*cyc, cyc[0]])))
    return devices


def _device(entry: DeviceEntry, merged: dict[str, Any], doc: InventoryFile, src: Located,
            where: tuple[str | int, ...], problems: list[Problem], broken: set[str]) -> Device | None:
    ok = True
    for key in ("kind", "category"):
        if merged.get(key) is None:
            problems.append(src.problem(where, f"{key} is not set for {entry.name!r} (nor by its group or defaults)"))
            ok = False

    snmp = merged.pop("snmp", None) or {}
    ssh = merged.pop("ssh", None) or {}
    for proto, cfg, cls, target in (("snmp", snmp, SnmpCredential, SnmpSettings),
                                    ("ssh", ssh, SshCredential, SshSettings)):
        enabled = cfg.pop("enabled", None)
        cred_name = cfg.pop("credential", None)
        settings = {k: v for k, v in cfg.items() if v is not None}
        if enabled is False or (cred_name is None and enabled is None):
            merged[proto] = None
            continue
        if cred_name is None:
            problems.append(src.problem((*where, proto), f"{proto} is enabled but names no credential"))
            ok = False
            continue
        cred = doc.credentials.get(cred_name)
        if cred is None and cred_name in broken:
            ok = False
            continue
        if cred is None:
            problems.append(src.problem(_cred_path(src, where, proto), f"unknown credential {cred_name!r}"))
            ok = False
            continue
        if not isinstance(cred, cls):
            problems.append(src.problem(_cred_path(src, where, proto),
                                        f"credential {cred_name!r} is of type {cred.type}, not {proto}"))
            ok = False
            continue
        merged[proto] = target(credential_name=cred_name, credential=cred, **settings)

    icmp = merged.pop("icmp", None) or {}
    if icmp.pop("enabled", None) is False:
        merged["icmp"] = None
    else:
        merged["icmp"] = {k: v for k, v in icmp.items() if v is not None}
    for key in ("schedule", "asset"):
        if merged.get(key) is not None:
            merged[key] = {k: v for k, v in merged[key].items() if v is not None}
        else:
            merged.pop(key, None)
    if not ok:
        return None
    merged["name"], merged["address"], merged["group"] = entry.name, entry.address, entry.group
    try:
        return Device.model_validate(merged)
    except ValidationError as exc:
        problems.extend(pydantic_problems(src, exc, where))
        return None


@functools.cache
def _profile_names() -> frozenset[str] | None:
    from weibao.agent.pollers.snmp.profiles import load_profiles

    try:
        return frozenset(load_profiles())
    except ConfigError:
        return None  # broken profile files are `weibao check`'s to report, not the inventory's


def _unknown_profiles(names: list[str]) -> list[str]:
    """Forced profile names that no profile file defines."""
    known = _profile_names()
    return [] if known is None else [n for n in names if n not in known]


def _cred_path(src: Located, where: tuple[str | int, ...], proto: str) -> tuple[str | int, ...]:
    path = (*where, proto, "credential")
    return path if path in src.lines else (*where, proto)
