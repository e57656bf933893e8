"""The SSH poller: servers and network devices, in worker threads, with a deadline per device."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paramiko
from netmiko import ConnectHandler
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException, ReadTimeout

from weibao.agent.errors import AuthFailure, DeviceTimeout, PollFailure, ProtocolFailure
from weibao.agent.inventory.model import Device
from weibao.agent.pollers.ssh import netdev, server, transport
from weibao.agent.pollers.ssh.configdiff import ConfigStore
from weibao.agent.pollers.ssh.transport import Abort, Deadline, HostKeyRejected
from weibao.agent.state import StateStore
from weibao.core.model import Event, EventKind, PollResult, Protocol, Sample, utcnow

log = logging.getLogger(__name__)

_UPTIME_KEY = "ssh.sys.uptime_s"
# an uptime this much below the previous one is a restart, not clock jitter
_REBOOT_SLACK_S = 60.0
_LOGOUT_S = 4.0


@dataclass(frozen=True, slots=True)
class NetdevOutput:
    version: str
    interfaces: str
    config: str | None


class SshPoller:
    """Polls devices with ``ssh`` settings: platform ``linux`` as a server, any other as a network device.

    ``config_dir`` keeps one masked running configuration per network device; with ``None`` the
    configuration is neither fetched nor compared.
    """

    def __init__(self, state: StateStore, config_dir: Path | None, *, max_workers: int = 8) -> None:
        self.state = state
        self.configs = ConfigStore(config_dir) if config_dir is not None else None
        self._max_workers = max_workers
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ssh-poll")
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def poll_many(self, devices: Sequence[Device]) -> list[PollResult]:
        return list(await asyncio.gather(*(self.poll(d) for d in devices)))

    async def poll(self, device: Device) -> PollResult:
        ts = utcnow()
        failed = PollResult(device=device.name, protocol=Protocol.SSH)
        if device.ssh is None:
            return self._down(failed, ts, "no ssh settings", retryable=False)
        timeout = device.ssh.timeout_s
        abort = Abort()
        async with self._semaphore():
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._pool, self._work, device, abort, ts)
            try:
                # the worker keeps its own deadline; this one only catches a worker stuck past it
                return await asyncio.wait_for(future, timeout=timeout + 0.5)
            except TimeoutError:
                # close the socket so the worker thread ends too; closing may block, so not on the loop
                loop.run_in_executor(None, abort.fire)
                return self._down(failed, ts, f"{device.name}: no complete answer within {timeout:g} s")
            except PollFailure as exc:
                return self._down(failed, ts, transport.scrub(str(exc), device), retryable=exc.retryable)
            except Exception as exc:  # a bug or an unforeseen library error must not stop the round
                log.exception("%s: unexpected error in the SSH poller", device.name)
                return self._down(failed, ts, f"{device.name}: internal error ({type(exc).__name__})")

    def _semaphore(self) -> asyncio.Semaphore:
        # one semaphore per event loop: a semaphore is bound to the loop it first waited in
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:
            self._slots, self._slots_loop = asyncio.Semaphore(self._max_workers), loop
        return self._slots

    # --- worker thread -------------------------------------------------------------------------

    def _work(self, device: Device, abort: Abort, ts: datetime) -> PollResult:
        """Connect, read and parse; raises PollFailure when the device cannot be read at all."""
        assert device.ssh is not None
        deadline = Deadline(device.ssh.timeout_s)
        output: server.ServerReport | NetdevOutput
        if device.ssh.platform == "linux":
            output = self._server_work(device, deadline, abort)
        else:
            output = self._netdev_work(device, deadline, abort)
        result = PollResult(device=device.name, protocol=Protocol.SSH)
        result.samples.append(Sample(device.name, "ssh.up", 1.0, ts))
        try:
            if isinstance(output, server.ServerReport):
                self._server_result(device, result, ts, output)
            else:
                self._netdev_result(device, result, ts, output)
        except PollFailure as exc:
            result.fail(transport.scrub(str(exc), device), retryable=exc.retryable)
        return result

    def _server_work(self, device: Device, deadline: Deadline, abort: Abort) -> server.ServerReport:
        t = transport.open_transport(device, deadline, abort)
        try:
            transport.authenticate(device, t, deadline)
            try:
                _status, text = transport.run(t, server.SCRIPT, deadline)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise transport.translate(device.name, exc, deadline) from exc
        finally:
            t.close()
        try:
            return server.parse_report(text)
        except PollFailure as exc:
            raise ProtocolFailure(f"{device.name}: {exc}") from exc

    def _netdev_work(self, device: Device, deadline: Deadline, abort: Abort) -> NetdevOutput:
        assert device.ssh is not None
        ssh = device.ssh
        platform = netdev.PLATFORMS.get(ssh.platform)
        if platform is None:
            raise ProtocolFailure(f"{device.name}: platform {ssh.platform!r} is not supported by the SSH poller "
                                  f"(known: linux, {', '.join(sorted(netdev.PLATFORMS))})")
        # the host key is checked (and trusted on first use if allowed) by our own policy before
        # netmiko connects in strict mode against the same file, so netmiko never adds a key itself
        transport.open_transport(device, deadline, abort).close()
        cred = ssh.credential
        where = f"{device.name} ({device.address}:{ssh.port})"
        params: dict[str, Any] = {
            "device_type": platform.device_type,
            "host": device.address,
            "port": ssh.port,
            "username": cred.username,
            "password": cred.password.get_secret_value() if cred.password else "",
            "secret": cred.enable_secret.get_secret_value() if cred.enable_secret else "",
            "pkey": transport.load_private_key(device),
            "use_keys": False,
            "allow_agent": False,
            "ssh_strict": True,
            "system_host_keys": False,
            "alt_host_keys": True,
            "alt_key_file": str(transport.known_hosts_path(ssh)),
            "conn_timeout": deadline.left(),
            "auth_timeout": deadline.left(),
            "banner_timeout": deadline.left(),
            "session_log": None,
        }
        try:
            conn = ConnectHandler(**params)
        except NetmikoAuthenticationException as exc:
            raise AuthFailure(f"{where}: authentication refused for user {cred.username!r}") from exc
        except NetmikoTimeoutException as exc:
            if "known_hosts" in str(exc) or "host key" in str(exc).lower():
                raise HostKeyRejected(f"{where}: host key refused on the second connection") from exc
            raise DeviceTimeout(f"{where}: SSH session could not be set up in time") from exc
        except ReadTimeout as exc:
            raise DeviceTimeout(f"{where}: no CLI prompt within {deadline.seconds:g} s") from exc
        except ValueError as exc:  # netmiko: prompt not recognised for this platform
            raise ProtocolFailure(f"{where}: no {platform.device_type} CLI prompt recognised") from exc
        except (OSError, EOFError) as exc:
            raise transport.translate(where, exc, deadline) from exc
        client = conn.remote_conn_pre
        if client is not None:
            abort.register(client.close)
        try:
            if platform.needs_enable and cred.enable_secret is not None and not conn.check_enable_mode():
                conn.enable()
            version = self._command(conn, platform.version, deadline, where)
            interfaces = self._command(conn, platform.interfaces, deadline, where)
            config = self._command(conn, platform.config, deadline, where) if self.configs else None
        except BaseException:
            # a session that failed gets no polite logout (which would wait for a prompt): just closed
            if client is not None:
                client.close()
            raise
        # netmiko's polite logout waits for quiet on the line (~2-3 s); only when time is left for it
        if deadline.remaining() > _LOGOUT_S:
            try:
                conn.disconnect()
            except Exception:  # the device may already have closed the session
                log.debug("%s: disconnect failed", device.name, exc_info=True)
        elif client is not None:
            client.close()
        return NetdevOutput(version, interfaces, config)

    @staticmethod
    def _command(conn: Any, command: str, deadline: Deadline, where: str) -> str:
        try:
            return str(conn.send_command(command, read_timeout=deadline.left()))
        except ReadTimeout as exc:
            raise DeviceTimeout(f"{where}: {command!r} did not finish in time") from exc
        except (OSError, EOFError) as exc:
            raise transport.translate(where, exc, deadline) from exc

    # --- results (event loop) -------------------------------------------------------------------

    @staticmethod
    def _down(result: PollResult, ts: datetime, message: str, *, retryable: bool = True) -> PollResult:
        result.samples.append(Sample(result.device, "ssh.up", 0.0, ts))
        return result.fail(message, retryable=retryable)

    def _uptime(self, device: Device, result: PollResult, ts: datetime, uptime_s: float) -> None:
        result.samples.append(Sample(device.name, "sys.uptime_s", uptime_s, ts))
        previous = self.state.get(device.name, _UPTIME_KEY)
        if isinstance(previous, int | float) and uptime_s + _REBOOT_SLACK_S < previous:
            result.events.append(Event(device.name, EventKind.REBOOTED, ts,
                                       {"previous_uptime_s": previous, "uptime_s": uptime_s, "source": "ssh"}))
        self.state.put(device.name, _UPTIME_KEY, uptime_s)

    def _server_result(self, device: Device, result: PollResult, ts: datetime, rep: server.ServerReport) -> None:
        name = device.name
        self._uptime(device, result, ts, rep.uptime_s)
        for metric, value in zip(("sys.load1", "sys.load5", "sys.load15"), rep.load, strict=True):
            result.samples.append(Sample(name, metric, value, ts))
        result.samples.append(Sample(name, "mem.util_pct", round(rep.mem_util_pct, 2), ts))
        for disk in rep.disks:
            result.samples.append(Sample(name, "disk.util_pct", round(disk.util_pct, 2), ts, {"mount": disk.mount}))
        result.facts["uname"] = rep.uname
        result.facts["mem_total_kb"] = rep.mem_total_kb
        result.facts["filesystems"] = [
            {"mount": d.mount, "type": d.fs_type, "used_kb": d.used_kb, "avail_kb": d.avail_kb} for d in rep.disks
        ]
        if rep.failed_units is not None:
            result.samples.append(Sample(name, "systemd.failed_units", float(len(rep.failed_units)), ts))
            result.facts["systemd_failed_units"] = rep.failed_units

    def _netdev_result(self, device: Device, result: PollResult, ts: datetime, out: NetdevOutput) -> None:
        assert device.ssh is not None
        platform = netdev.PLATFORMS[device.ssh.platform]
        version = netdev.parse_version(platform, out.version)
        result.facts.update({k: v for k, v in (("model", version.model), ("software_version", version.software),
                                              ("hostname", version.hostname), ("serial", version.serial)) if v})
        if version.uptime_s is not None:
            self._uptime(device, result, ts, version.uptime_s)
        interfaces = netdev.parse_interfaces(platform, out.interfaces)
        if not interfaces:
            result.fail(f"{device.name}: no interface found in the output of {platform.interfaces!r}",
                        retryable=False)
        for itf in interfaces:
            result.samples.append(Sample(device.name, "if.oper_up", 1.0 if itf.oper_up else 0.0, ts,
                                         {"ifName": itf.name}))
        result.facts["interfaces"] = {i.name: i.detail for i in interfaces}
        if out.config is not None and self.configs is not None:
            self._config(device, result, ts, out.config)

    def _config(self, device: Device, result: PollResult, ts: datetime, raw: str) -> None:
        assert self.configs is not None
        if not raw.strip():
            result.fail(f"{device.name}: empty running configuration", retryable=True)
            return
        stored, change = self.configs.update(device.name, raw)
        result.facts["config_path"] = str(self.configs.path(device.name))
        result.facts["config_lines"] = stored.count("\n")
        if change is not None:
            result.events.append(Event(device.name, EventKind.CONFIG_CHANGED, ts,
                                       {"diff": change.diff, "added": change.added, "removed": change.removed}))
