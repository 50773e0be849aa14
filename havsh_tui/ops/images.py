"""Images on hosts that may not reach a registry: check, pull, and stream between engines."""

from __future__ import annotations

import threading
import time

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
