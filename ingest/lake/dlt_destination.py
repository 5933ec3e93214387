"""dlt's filesystem destination for the lake, without a configuration resolution per question.

A pipeline asks its destination for its capabilities about a dozen times per job
(`Destination.capabilities()` with no configuration). dlt answers each time by resolving a
partial destination configuration from every configuration provider (~5 ms each in a warm
worker, a fifth of a small table's whole job), only to learn the lake's protocol: the one
thing the filesystem destination's capabilities depend on (`filesystem.adjust_capabilities`).
The lake's factory hands dlt an explicit configuration that holds the bucket URL instead, so
the answer is the same and nothing is resolved. Its client commits a load through the job's
fenced commit (`ingest.lake.commits`) before dlt writes the load's state and marker.
Everything else (the client's configuration,
credentials, the configuration section `destination.filesystem`, the type recorded in the
pipeline state) is dlt's own.

dlt is imported when the first pipeline is built, not with this module: the audit, the
history and the HTTP API use the lake without dlt.
"""

from __future__ import annotations

import functools
from typing import Any

from ingest.lake.commits import commit_hook

#: the type dlt records in the pipeline state (`destination_type`): the lake stays readable by
#: plain dlt pipelines and by earlier versions of this framework
DLT_FILESYSTEM_TYPE = "dlt.destinations.filesystem"


def lake_filesystem(**kwargs: Any) -> Any:
    """dlt's `filesystem` destination factory with `kwargs`, capabilities without resolving."""
    return _lake_filesystem_class()(**kwargs)


@functools.cache
def _lake_filesystem_class() -> type:
    # dlt: only when a pipeline is built (see the module's docstring)
    from dlt.destinations import filesystem
    from dlt.destinations.impl.filesystem.filesystem import FilesystemClient

    class LakeFilesystemClient(FilesystemClient):
        """dlt's filesystem client; a load is committed by the job's fenced commit first."""

        def complete_load(self, load_id: str) -> None:
            # the commit (ingest.lake.commits), then dlt's state file and completion marker: a
            # writer that may no longer commit raises here and writes neither
            committer = commit_hook()
            if committer is not None:
                committer(load_id, self.schema.name)
                if not getattr(committer, "writes_marker", True):
                    # a chunk of a split load (ingest.job.split): its files have landed, the
                    # load's state and marker are the split load's commit's to write
                    return
            super().complete_load(load_id)

    class LakeFilesystem(filesystem):
        """dlt's `filesystem` destination; capabilities from an explicit configuration."""

        @property
        def destination_type(self) -> str:
            return DLT_FILESYSTEM_TYPE

        @property
        def client_class(self) -> type:
            return LakeFilesystemClient

        def capabilities(self, config: Any = None, naming: Any = None) -> Any:
            if config is None:
                # what dlt's partial resolution would find for the lake's factories: the bucket
                # URL (always passed explicitly, so it wins over any provider): the protocol
                config = self.spec(bucket_url=self.config_params["bucket_url"])
            return super().capabilities(config, naming)

    return LakeFilesystem
