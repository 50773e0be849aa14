from havsh_tui.ops.hosts import _platform_states


def test_platform_containers_in_order_with_their_states():
    rows = [
        {"Names": ["/havsh-erp"], "State": "running"},
        {"Names": ["/havsh-backups"], "State": "exited"},
        {"Names": ["/havsh-postgres"], "State": "running"},
        {"Names": [], "State": "running"},
        {"State": "running"},
    ]
    assert list(_platform_states(rows).items()) == [("havsh-postgres", "running"),
                                                   ("havsh-backups", "exited")]
    assert _platform_states([]) == {}
