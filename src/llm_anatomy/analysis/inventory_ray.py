"""The inventory's Ray engine (`scan --engine ray`): each checkpoint's row made by
inventory.row_of in a Ray task, on whichever node of the cluster Ray picks, instead of in
this process's thread pool. The walk and the listing stay here (they are one stream, and
cheap); rows come back as each task finishes and go to the same writer as the local
engine's, so the --out file holds the same rows either way.

Ray tasks with a bound on those in flight (ray.wait), not Ray Data: the checkpoints come
from a streamed walk or listing of unknown length (a bucket of a million keys), and
ray.data.from_items needs the whole list in this process first, while a Ray Data source
that lists a bucket itself would be more code than the bound. Ray schedules the tasks,
places them on the nodes and runs a task again when its worker dies; this module only
keeps at most `workers` submitted and not yet collected, so memory here stays bounded
whatever the count.

A task opens what its target names on its node: a local path must be there too (a shared
file system), an object store's address is read with the node's own credentials."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator

    from .inventory import Row, Target

from ..core.errors import AnatomyError


def _row(target: Target, deep: bool) -> Row:
    """In a Ray worker: the target's row, each bucket's client made for this task (a task
    holds one checkpoint, and so mostly one bucket)."""
    from . import inventory

    stores: dict[str, Any] = {}

    def store(bucket: str) -> Any:
        if bucket not in stores:
            from ..hub import s3

            stores[bucket] = s3.store(bucket)
        return stores[bucket]

    return inventory.row_of(target, store, deep)


def connect(address: str | None) -> Any:
    """The ray module, connected: to the cluster already joined in this process, else to
    address (None: RAY_ADDRESS, else a cluster started on this machine by `ray start`, else
    a new local one, as ray.init decides). MissingExtra without the `ray` extra."""
    from ..core.extras import require

    require("ray", "--engine ray", "to run the inventory on a Ray cluster")
    import logging

    import ray

    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except Exception as exc:  # ray raises ConnectionError, ValueError, RuntimeError... by cause
            raise AnatomyError(
                address or "RAY_ADDRESS",
                "a Ray cluster to join",
                f"none ({type(exc).__name__})",
                "start one with `ray start --head`, or check --ray-address",
            ) from None
    return ray


def rows(todo: Iterable[Target], workers: int, deep: bool = False, address: str | None = None) -> Iterator[Row]:
    """A Row per target, each made by a Ray task, as each finishes; at most `workers` tasks
    submitted and not yet collected."""
    ray = connect(address)
    task = ray.remote(_row)
    pending: list = []
    for target in todo:
        if len(pending) >= workers:
            done, pending = ray.wait(pending, num_returns=1)
            yield from ray.get(done)
        pending.append(task.remote(target, deep))
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield from ray.get(done)
