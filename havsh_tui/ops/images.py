"""Images on hosts that may not reach a registry: check, pull, and stream between engines."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import docker
import docker.errors

from havsh_tui.ops.hosts import OpsError
from havsh_tui.ops.reporter import NullReporter, Reporter, check_cancelled
from havsh_tui.remote.drops import drops_mapped


class ImageMissing(OpsError):
    """The host lacks the image and could not pull it. ``push_image`` is the way out."""

    def __init__(self, host: str, ref: str, pull_error: str) -> None:
        self.host = host
        self.ref = ref
        self.pull_error = pull_error
        self.kind = "image_missing"
        super().__init__(
            f"{host} has no image {ref!r} and could not pull it ({pull_error}). "
            f"Stream it from another host or your own engine: "
            f"`havsh host push-image {host} {ref} --from HOST|local`"
        )


def has_image(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.api.inspect_image(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_image(
    client: docker.DockerClient,
    host: str,
    ref: str,
    reporter: Reporter | None = None,
    *,
    pull: bool = True,
) -> str:
    """Return the image's ID on the host, pulling it if it is missing.

    Raises ImageMissing when the host lacks the image and the pull fails (no registry,
    rate-limited, or an image that exists nowhere).
    """
    reporter = reporter or NullReporter()
    try:
        return client.api.inspect_image(ref)["Id"]
    except docker.errors.ImageNotFound:
        pass
    if not pull:
        raise ImageMissing(host, ref, "pull disabled")
    reporter.step(f"pull {ref}", "running")
    try:
        stream_pull(client, ref, reporter)
    except (docker.errors.APIError, docker.errors.NotFound) as exc:
        reporter.step(f"pull {ref}", "failed", str(exc))
        raise ImageMissing(host, ref, _short(exc)) from exc
    reporter.step(f"pull {ref}", "done")
    return client.api.inspect_image(ref)["Id"]


def stream_pull(client: docker.DockerClient, ref: str, reporter: Reporter) -> None:
    """Pull ``ref``, its progress lines into the reporter's log. An error the engine reports
    inside the stream (it answers 200 first) is raised as ``docker.errors.APIError``."""
    repo, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "latest")
    with drops_mapped(client, f"the pull of {ref}"):
        for event in client.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
            if "error" in event:
                raise docker.errors.APIError(event["error"])
            if event.get("status"):
                reporter.log(f"{event.get('id', '')} {event['status']}".strip())


def _short(exc: Exception) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return str(text).splitlines()[0][:200]


def push_image(
    src: docker.DockerClient,
    dst: docker.DockerClient,
    ref: str,
    reporter: Reporter | None = None,
    *,
    chunk_size: int = 1 << 20,
) -> dict:
    """Stream ``docker save`` from one engine into ``docker load`` on another.

    Nothing is held whole in memory: chunks pass from one SSH connection to the other.
    Returns the bytes moved and the image ID on the target.
    """
    reporter = reporter or NullReporter()
    try:
        info = src.api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        raise OpsError(f"the source engine has no image {ref!r}") from None
    image_id = info["Id"]
    if has_image(dst, ref) and dst.api.inspect_image(ref)["Id"] == image_id:
        reporter.step(f"push {ref}", "skipped", "the target has this image already")
        return {"image": ref, "id": image_id, "bytes": 0, "skipped": True}
    total = info.get("Size") or None
    moved = 0
    started = time.monotonic()
    lock = threading.Lock()
    reporter.step(f"push {ref}", "running")

    def chunks():
        nonlocal moved
        for chunk in src.api.get_image(ref, chunk_size=chunk_size):
            check_cancelled(reporter)
            with lock:
                moved += len(chunk)
            elapsed = max(time.monotonic() - started, 1e-6)
            reporter.progress(moved, total, f"{moved / elapsed / 1e6:.1f} MB/s")
            yield chunk

    try:
        result = dst.api.load_image(chunks(), quiet=True)
        for event in result or []:
            if isinstance(event, dict) and event.get("error"):
                raise OpsError(f"docker load on the target failed: {event['error']}")
    except docker.errors.APIError as exc:
        reporter.step(f"push {ref}", "failed", _short(exc))
        raise OpsError(f"docker load on the target failed: {_short(exc)}") from exc
    if not has_image(dst, ref):
        raise OpsError(f"the target did not end up with {ref!r} after the load")
    reporter.step(f"push {ref}", "done", f"{moved} bytes")
    return {"image": ref, "id": image_id, "bytes": moved, "skipped": False,
            "seconds": round(time.monotonic() - started, 2)}


# -- pushing to a host of the inventory (the CLI's push-image and the TUI's offer) --------------

#: The source name of the operator's own Docker engine.
LOCAL_ENGINE = "local"


class LocalEngineUnavailable(OpsError):
    kind = "docker_unavailable"


def source_client(inventory, pool, source: str, target: str) -> docker.DockerClient:
    """The Docker client of a push source: ``local`` (this machine's engine) or another host
    of the inventory."""
    if source == LOCAL_ENGINE:
        from havsh_tui.remote.docker_api import local_docker_client

        try:
            client = local_docker_client()
            client.ping()
        except Exception as exc:  # noqa: BLE001 - said as such
            raise LocalEngineUnavailable(f"no local Docker engine answers: {_short(exc)}") from None
        return client
    if source == target:
        raise OpsError(f"the source is the target host itself ({target})")
    return pool.session(inventory.get_host(source)).docker()


@dataclass
class ImageSource:
    """Whether one possible source has the image: ``has`` is None when it could not be asked
    (unreachable, no local engine), with the reason in ``detail``."""

    name: str
    has: bool | None
    size: int | None = None
    detail: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def find_image_sources(inventory, pool, target: str, ref: str,
                       timeout: float = 15.0) -> list[ImageSource]:
    """Ask every other host of the inventory, and the local engine, whether it has ``ref``
    (in parallel: a dead host costs its connect timeout once, not once per host). The local
    engine first, then the hosts by name."""
    from concurrent.futures import ThreadPoolExecutor, wait

    names = [LOCAL_ENGINE] + sorted(h.name for h in inventory.list_hosts() if h.name != target)

    def ask(name: str) -> ImageSource:
        client = None
        try:
            client = source_client(inventory, pool, name, target)
            info = client.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return ImageSource(name, False, detail="does not have it")
        except Exception as exc:  # noqa: BLE001 - one answer among several
            return ImageSource(name, None, detail=_short(exc))
        finally:
            if name == LOCAL_ENGINE and client is not None:
                client.close()  # the hosts' clients belong to their sessions
        return ImageSource(name, True, size=info.get("Size"), detail=str(info["Id"])[:19])

    pool_ = ThreadPoolExecutor(max_workers=min(8, len(names)))
    try:
        futures = {name: pool_.submit(ask, name) for name in names}
        wait(futures.values(), timeout=timeout)
        out = []
        for name, fut in futures.items():
            if fut.done():
                out.append(fut.result())
            else:
                out.append(ImageSource(name, None, detail=f"no answer in {timeout:.0f} s"))
        return out
    finally:
        pool_.shutdown(wait=False, cancel_futures=True)


def push_image_to(inventory, pool, target: str, ref: str, source: str,
                  reporter: Reporter | None = None, audit=None) -> dict:
    """Stream ``ref`` from ``source`` (``local`` or a host) to host ``target``, audited."""
    src = source_client(inventory, pool, source, target)
    dst = pool.session(inventory.get_host(target)).docker()
    try:
        result = push_image(src, dst, ref, reporter)
    except Exception as exc:
        if audit is not None:
            audit.append(target, "image.load", ref, "failed", f"from {source}: {exc}")
        raise
    finally:
        if source == LOCAL_ENGINE:
            src.close()
    if audit is not None and not result.get("skipped"):
        audit.append(target, "image.load", ref, "ok", f"from {source}, {result['bytes']} bytes")
    return {**result, "host": target, "source": source}


def image_missing_of(error: BaseException | None) -> ImageMissing | None:
    """The ImageMissing behind an error (a failed step wraps it), if there is one."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, ImageMissing):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None
