"""havsh_tui.github against the local GitHub stand-in (an HTTP server on 127.0.0.1): the
connection's sources, PyGithub's base_url, pagination, the tarball redirect, deployments,
comments, and the errors that name the missing right. Plus the tarball rewriting."""

from __future__ import annotations

import io
import tarfile

import pytest

from havsh_tui.core.inventory import open_inventory
from havsh_tui.core.paths import AppPaths
from havsh_tui.core.secrets import SecretStore
from havsh_tui.github import addons
from havsh_tui.github.client import (
    DEFAULT_API_URL,
    GitHubConnection,
    GitHubError,
    MissingRight,
    NotFound,
    NotLoggedIn,
    RateLimited,
    connect,
    forget_login,
    humanize_permissions,
    normalize_api_url,
    resolve_connection,
    store_login,
    validate_repo_name,
)
from tests.infra.github_standin import ALL_RIGHTS, GitHubStandin

REPO = "acme/addons"
FILES = {
    "README.md": "hello\n",
    "mod_a/__manifest__.py": "{'name': 'A', 'version': '1.0'}\n",
    "mod_a/__init__.py": "",
    "mod_a/models/big.py": "x = 1\n" * 20000,
    "setup/mod_a/setup.py": "",
    ".github/workflows/ci.yml": "on: push\n",
}


@pytest.fixture
def gh():
    with GitHubStandin() as standin:
        standin.token = standin.add_token("acme")
        standin.create_repo(REPO, FILES)
        yield standin


def client(standin, token=None, **kw):
    kw.setdefault("throttle", False)
    return connect(GitHubConnection(standin.api_url, token or standin.token, "GITHUB_TOKEN"),
                   **kw)


@pytest.fixture
def stores(tmp_path):
    paths = AppPaths(home=tmp_path).ensure()
    return open_inventory(paths), SecretStore(paths.secrets)


# -- the connection -----------------------------------------------------------------------------


def test_token_from_env_wins_and_api_url_precedence(stores):
    inv, sec = stores
    with pytest.raises(NotLoggedIn, match="GITHUB_TOKEN.*havsh github login"):
        resolve_connection(inv, sec, environ={})
    store_login(inv, sec, "ghp_storedtoken0000000000", "https://ghe.example.com/api/v3/",
                "alice")
    conn = resolve_connection(inv, sec, environ={})
    assert (conn.api_url, conn.token, conn.token_source, conn.login) == (
        "https://ghe.example.com/api/v3", "ghp_storedtoken0000000000", "secrets", "alice")
    # The token never shows in a repr, nor in the inventory file.
    assert "storedtoken" not in repr(conn) and conn.to_dict()["token"].startswith("*")
    assert "storedtoken" not in inv.path.read_text()
    env = {"GITHUB_TOKEN": "ghp_fromenv", "GITHUB_API_URL": "https://other.example/api"}
    conn = resolve_connection(inv, sec, environ=env)
    assert (conn.token, conn.token_source, conn.api_url) == (
        "ghp_fromenv", "GITHUB_TOKEN", "https://other.example/api")
    assert resolve_connection(inv, sec, environ=env,
                              api_url="http://127.0.0.1:9/x").api_url == "http://127.0.0.1:9/x"
    assert forget_login(inv, sec) is True
    assert resolve_connection(inv, sec, environ={"GITHUB_TOKEN": "t"}).api_url == \
        DEFAULT_API_URL


def test_api_url_and_names_are_checked():
    for bad in ("ftp://x", "api.github.com", "https://user:pw@h/api", "https://h/api?x=1"):
        with pytest.raises(GitHubError):
            normalize_api_url(bad)
    assert normalize_api_url(" https://h/api/v3/ ") == "https://h/api/v3"
    assert validate_repo_name("OCA/web-addons_1.x") == "OCA/web-addons_1.x"
    for bad in ("acme", "acme/", "a/b/c", "../x", "a/..", "a b/c"):
        with pytest.raises(ValueError):
            validate_repo_name(bad)


def test_humanized_permissions():
    assert humanize_permissions("pull_requests=read") == "Pull requests: read"
    assert humanize_permissions("deployments=write; contents=read,metadata=read") == (
        "Deployments: write or Contents: read and Metadata: read")


# -- calls --------------------------------------------------------------------------------------


def test_user_and_visible_repos_paginated(gh):
    for i in range(120):
        gh.create_repo(f"acme/r{i:03}", {"x": "y"})
    with client(gh) as c:
        mark = gh.mark()
        assert c.whoami().login == "acme"
        repos = c.visible_repos()
    assert len(repos) == 121 and REPO in repos
    paths = [r.path for r in gh.requests_since(mark)]
    assert paths == ["/api/v3/user", "/api/v3/user/repos", "/api/v3/user/repos"]
    assert c.rate_limit() is not None


def test_open_pulls_one_request_per_hundred_and_fork_detection(gh):
    for i in range(130):
        gh.open_pr(REPO, f"b{i}", title=f"PR {i}", changes={f"mod_a/f{i}.py": "1"})
    fork = gh.fork(REPO, "mallory")
    gh.commit(fork, "evil", {"mod_a/evil.py": "boom"})
    fork_n = gh.open_pr(REPO, "evil", head_repo=fork, title="From a fork")
    with client(gh) as c:
        mark = gh.mark()
        pulls = c.repo(REPO).open_pulls()
    assert len(gh.requests_since(mark)) == 2  # 131 PRs, 100 per page
    assert [p.number for p in pulls] == sorted(p.number for p in pulls)
    first, forked = pulls[0], pulls[-1]
    assert (first.key, first.head_ref, first.base_ref, first.is_fork) == (
        f"{REPO}#1", "b0", "main", False)
    assert first.head_sha == gh.pr_head(REPO, 1) and first.base_sha == gh.branch_sha(REPO,
                                                                                    "main")
    assert (forked.number, forked.is_fork, forked.head_repo) == (fork_n, True, fork)
    gh.delete_repo(fork)  # a deleted fork: GitHub gives head.repo null
    with client(gh) as c:
        p = c.repo(REPO).pull(fork_n)
    assert p.head_repo is None and p.is_fork


def test_pull_closed_merged_and_missing(gh):
    n = gh.open_pr(REPO, "feat", changes={"mod_a/x.py": "1"})
    gh.close_pr(REPO, n, merged=True)
    with client(gh) as c:
        p = c.repo(REPO).pull(n)
        assert (p.state, p.merged, p.is_open) == ("closed", True, False)
        assert c.repo(REPO).open_pulls() == []
        with pytest.raises(NotFound, match="no pull request #99"):
            c.repo(REPO).pull(99)


def test_changed_files_and_force_push(gh):
    base = gh.branch_sha(REPO, "main")
    n = gh.open_pr(REPO, "feat", changes={"mod_a/x.py": "1", "README.md": None})
    head = gh.pr_head(REPO, n)
    with client(gh) as c:
        r = c.repo(REPO)
        assert sorted(r.changed_files(base, head)) == ["README.md", "mod_a/x.py"]
        assert r.changed_files(head, head) == []
        assert r.changed_files("f" * 40, head) is None  # gone after a force-push
        assert r.commit_sha("main") == base
        assert r.commit_sha(head[:10]) == head
        with pytest.raises(NotFound, match="no branch, tag or commit"):
            r.commit_sha("nope")
    assert addons.touched_modules(["README.md", "mod_a/x.py", "mod_b", "x/y/z"]) == {
        "mod_a", "x"}
    assert addons.touched_modules(["addons/m1/a.py", "m2/b.py"], "addons/") == {"m1"}


def test_tarball_follows_the_redirect_and_streams(gh):
    sha = gh.branch_sha(REPO, "main")
    with client(gh) as c:
        mark = gh.mark()
        with c.repo(REPO).tarball(sha) as chunks:
            parts = list(chunks)
    hops = gh.requests_since(mark, api_only=False)
    assert [(r.path.split("/")[1], r.status) for r in hops] == [("api", 302),
                                                                ("_codeload", 200)]
    assert hops[0].authorized and not hops[1].authorized  # our token stays with the API
    data = b"".join(parts)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
        assert tar.pax_headers["comment"] == sha
    assert f"acme-addons-{sha[:7]}/mod_a/__manifest__.py" in names


def test_rewrite_tarball(gh):
    sha = gh.branch_sha(REPO, "main")
    raw = gh.tarball_bytes(REPO, sha)
    tree = addons.AddonsTree()
    chunks = [raw[i:i + 333] for i in range(0, len(raw), 333)]
    out = b"".join(addons.rewrite_tarball(chunks, prefix=".stage-1", tree=tree))
    assert tree.done and tree.modules == ["mod_a"] and tree.commit == sha
    assert tree.files == 4 and ".github (not a module folder name)" in tree.skipped
    with tarfile.open(fileobj=io.BytesIO(out), mode="r:gz") as tar:
        members = {m.name: m for m in tar}
    assert ".stage-1/mod_a/models/big.py" in members and ".stage-1/README.md" not in members
    big = members[".stage-1/mod_a/models/big.py"]
    assert (big.size, big.uid, big.mode) == (len(FILES["mod_a/models/big.py"]), 0, 0o644)
    # A subfolder: only what is under it, stripped.
    tree = addons.AddonsTree()
    out = b"".join(addons.rewrite_tarball([raw], prefix="s", subdir="setup", tree=tree))
    with tarfile.open(fileobj=io.BytesIO(out), mode="r:gz") as tar:
        assert [m.name for m in tar if m.isfile()] == ["s/mod_a/setup.py"]
    assert tree.modules == []  # no manifest there


def test_rewrite_drops_links_and_unsafe_paths():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind in (("top/m/__manifest__.py", "file"), ("top/m/link", "sym"),
                           ("top/m/../../etc/x", "file"), ("top/m/dev", "fifo")):
            info = tarfile.TarInfo(name)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            else:
                info.size = 2
            tar.addfile(info, io.BytesIO(b"{}") if kind == "file" else None)
    tree = addons.AddonsTree()
    out = b"".join(addons.rewrite_tarball([buf.getvalue()], prefix="p", tree=tree))
    with tarfile.open(fileobj=io.BytesIO(out), mode="r:gz") as tar:
        assert sorted(m.name for m in tar) == ["p", "p/m", "p/m/__manifest__.py"]
    assert sorted(tree.skipped) == ["m/../../etc/x (unsafe path)", "m/dev (special file)",
                                    "m/link (link)"]
    with pytest.raises(addons.AddonsError, match="not a gzip tar"):
        list(addons.rewrite_tarball([b"not a tarball at all" * 10], prefix="p"))
    for bad in ("../x", "/etc", "a/../b"):
        with pytest.raises(addons.AddonsError):
            addons.validate_subdir(bad)
    assert addons.validate_subdir("./addons/") == "addons"


def test_deployments_statuses_and_comments(gh):
    sha = gh.branch_sha(REPO, "main")
    with client(gh) as c:
        r = c.repo(REPO)
        dep = r.create_deployment(sha, "preview/pr-1", description="x" * 300,
                                  payload={"havsh": {"preview": "erp-pr1"}})
        r.deployment_status(dep, "in_progress", description="building")
        r.deployment_status(dep, "success", environment_url="https://erp-pr1.example/",
                            description="y" * 200)
        (listed,) = r.deployments("preview/pr-1")
        assert listed.id == dep and listed.payload == {"havsh": {"preview": "erp-pr1"}}
        assert r.deployments("preview/pr-2") == []
        n = gh.open_pr(REPO, "feat", changes={"mod_a/x.py": "1"})
        r.comment(n, "hello from havsh")
    (d,) = gh.deployments(REPO)
    assert (d.transient_environment, d.production_environment, d.task) == (
        True, False, "deploy:preview")
    assert [s["state"] for s in d.statuses] == ["in_progress", "success"]
    assert d.statuses[-1]["environment_url"] == "https://erp-pr1.example/"
    assert [c["body"] for c in gh.comments(REPO, n)] == ["hello from havsh"]


# -- errors -------------------------------------------------------------------------------------


def test_bad_token_missing_rights_and_invisible_repo(gh):
    sha = gh.branch_sha(REPO, "main")
    with client(gh, token="ghp_wrong") as c, pytest.raises(GitHubError,
                                                            match="refused the token"):
        c.whoami()
    no_pulls = gh.add_token("bob", rights=ALL_RIGHTS - {"pull_requests:read"})
    with client(gh, token=no_pulls) as c:
        with pytest.raises(MissingRight, match="Pull requests: read") as exc:
            c.repo(REPO).open_pulls()
        assert exc.value.right == "Pull requests: read" and exc.value.status == 403
    no_deploy = gh.add_token("bob", rights=ALL_RIGHTS - {"deployments:write"})
    with client(gh, token=no_deploy) as c, pytest.raises(MissingRight,
                                                          match="Deployments: write"):
        c.repo(REPO).create_deployment(sha, "preview/pr-1", description="", payload={})
    no_comment = gh.add_token("bob", rights={"metadata:read", "pull_requests:read"})
    n = gh.open_pr(REPO, "feat", changes={"mod_a/x.py": "1"})
    with client(gh, token=no_comment) as c:
        with pytest.raises(MissingRight, match="Issues: write or Pull requests: write"):
            c.repo(REPO).comment(n, "x")
        with pytest.raises(MissingRight, match="Contents: read"):
            with c.repo(REPO).tarball(sha) as chunks:
                list(chunks)
    blind = gh.add_token("eve", repos={"acme/other"})
    with client(gh, token=blind) as c, pytest.raises(NotFound, match="cannot see it"):
        c.repo(REPO).info()


def test_rate_limit_is_reported_not_waited_for(gh):
    gh.tokens[gh.token].remaining = 0
    with client(gh) as c, pytest.raises(RateLimited, match="rate limit.*resets at"):
        c.repo(REPO).open_pulls()


def test_unreachable_api_is_a_clear_error():
    conn = GitHubConnection("http://127.0.0.1:9/api/v3", "t", "GITHUB_TOKEN")
    with connect(conn, throttle=False, retries=0, timeout=2) as c, pytest.raises(
            GitHubError, match="cannot reach GitHub at http://127.0.0.1:9/api/v3"):
        c.whoami()
