"""schedule._foreign_lines: which lines of a running scheduler another inventory owns, and
how their directories are mounted again (a fake engine; the real one in
tests/integration/test_schedule_sharing.py)."""

from __future__ import annotations

import io
import tarfile

from havsh_tui.ops.backup import schedule


class _Api:
    def __init__(self, conf: str, services: list[str]):
        self.conf, self.services = conf, services

    def get_archive(self, container, path):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = self.conf.encode()
            info = tarfile.TarInfo("schedule.conf")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return iter([buf.getvalue()]), {}

    def containers(self, all, filters):
        return [{"Labels": {"sh.hav.service": s}} for s in self.services]


class _Client:
    def __init__(self, conf, services):
        self.api = _Api(conf, services)


def _line(svc: str, outdir: str, fsdir: str) -> str:
    return (f"0 3 * * * {svc} {svc.replace('-', '_')} 17.0 {outdir} 7 store zip {fsdir} "
            "hosta test")


CURRENT = {"HostConfig": {"Binds": [
    "/var/lib/docker/volumes:/volumes:ro",
    "/srv/backups:/backups/0:rw",
    "/mnt/nas/odoo:/backups/1:rw",
    "nfsvol:/vol/far:ro",
]}}


def test_keeps_other_inventories_lines_remapped_and_drops_owned_or_gone():
    conf = "\n".join([
        "# header",
        _line("mine", "/backups/0", "/volumes/havsh-mine-data/_data/filestore/mine"),
        _line("theirs", "/backups/1", "/volumes/havsh-theirs-data/_data/filestore/theirs"),
        _line("gone", "/backups/0", "/volumes/havsh-gone-data/_data/filestore/gone"),
        _line("far", "/backups/0", "/vol/far/filestore/far"),
        "a broken line",
    ])
    client = _Client(conf, ["mine", "theirs", "far"])
    roots = {"/srv/backups": "/backups/0"}  # this inventory's own mounts, made first
    binds: dict[str, dict] = {}
    lines, kept = schedule._foreign_lines(client, CURRENT, {"mine"}, roots, binds)
    assert kept == ["theirs", "far"]
    theirs, far = (ln.split() for ln in lines)
    assert theirs[8] == "/backups/1" and roots["/mnt/nas/odoo"] == "/backups/1"
    assert far[8] == "/backups/0", "the same directory shares this inventory's mount"
    assert binds == {"nfsvol": {"bind": "/vol/far", "mode": "ro"}}


def test_a_line_whose_directory_is_not_mounted_is_dropped():
    conf = _line("theirs", "/backups/7", "/volumes/v/_data/filestore/theirs")
    lines, kept = schedule._foreign_lines(_Client(conf, ["theirs"]), CURRENT, set(), {}, {})
    assert lines == [] and kept == []


def test_no_scheduler_file_keeps_nothing():
    class Broken(_Api):
        def get_archive(self, container, path):
            import docker.errors

            raise docker.errors.NotFound("no file")

    client = _Client("", ["x"])
    client.api = Broken("", ["x"])
    assert schedule._foreign_lines(client, CURRENT, set(), {}, {}) == ([], [])
