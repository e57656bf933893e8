"""What the agent and the collector share. Imports neither ``weibao.agent`` nor ``weibao.collector``."""
