"""GitHub, through PyGithub: the connection, repositories, pull requests, compare, tarballs,
deployments and their statuses, PR comments; and turning a tarball into an addons tree.

No Textual here, and no Docker: ops/ puts what this package downloads onto the hosts.
"""

from havsh_tui.github.client import (
    DEFAULT_API_URL,
    GitHubClient,
    GitHubConnection,
    GitHubError,
    MissingRight,
    NotLoggedIn,
    PullInfo,
    RepoClient,
    RepoInfo,
    connect,
    forget_login,
    resolve_connection,
    store_login,
)

__all__ = [
    "DEFAULT_API_URL",
    "GitHubClient",
    "GitHubConnection",
    "GitHubError",
    "MissingRight",
    "NotLoggedIn",
    "PullInfo",
    "RepoClient",
    "RepoInfo",
    "connect",
    "forget_login",
    "resolve_connection",
    "store_login",
]
