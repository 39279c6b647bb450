"""Coding agents: task worktrees, the agent loop, file tools, the sandbox, review and merge."""
