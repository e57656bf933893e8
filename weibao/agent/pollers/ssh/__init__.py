"""SSH polling of Linux servers and network devices, with host-key checking and configuration change tracking."""

from weibao.agent.pollers.ssh.poller import SshPoller

__all__ = ["SshPoller"]
