"""Host-side git for Lugh. Every call is an argument list with hooks and fsmonitor off, a
scrubbed environment and a timeout; names from outside are validated before git sees them."""

from lugh.git.refs import (
    InvalidBranchName,
    branch_name_problem,
    is_valid_branch_name,
    validate_branch_name,
)
from lugh.git.repos import (
    InvalidCloneSource,
    branch_exists,
    clone,
    clone_source_problem,
    create_branch,
    default_branch,
    has_commits,
    is_repo,
    resolve_commit,
    validate_clone_source,
    without_credentials,
    work_tree_root,
)
from lugh.git.runner import GitError, GitResult, git_environment, redact_url, run

__all__ = [
    "GitError",
    "GitResult",
    "InvalidBranchName",
    "InvalidCloneSource",
    "branch_exists",
    "branch_name_problem",
    "clone",
    "clone_source_problem",
    "create_branch",
    "default_branch",
    "git_environment",
    "has_commits",
    "is_repo",
    "is_valid_branch_name",
    "redact_url",
    "resolve_commit",
    "run",
    "validate_branch_name",
    "validate_clone_source",
    "without_credentials",
    "work_tree_root",
]
