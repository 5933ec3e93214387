"""The lake's dlt destination: dlt's filesystem destination, capabilities without resolution."""

from __future__ import annotations

import dlt.common.destination.reference as reference
import pytest
from dlt.destinations import filesystem

from ingest.lake.destination import Destination
from ingest.lake.dlt_destination import lake_filesystem
from ingest.lake.layout import LAYOUT


@pytest.mark.parametrize("url", ["file:///tmp/lake", "az://raw/lake", "hf://datasets/u/d"])
def test_capabilities_are_dlts_own_without_resolving_configuration(url, monkeypatch):
    ours, plain = lake_filesystem(bucket_url=url, layout=LAYOUT), filesystem(bucket_url=url)
    expected = dict(plain.capabilities())
    resolved = []
    original = reference.resolve_configuration
    monkeypatch.setattr(
        reference,
        "resolve_configuration",
        lambda *args, **kwargs: resolved.append(args) or original(*args, **kwargs),
    )
    assert dict(ours.capabilities()) == expected
    assert resolved == []  # dlt's own factory resolves a partial configuration every time
    plain.capabilities()
    assert len(resolved) == 1


def test_the_pipeline_state_and_configuration_section_stay_dlts():
    dest = Destination.from_url("file:///tmp/lake").dlt_destination()
    assert isinstance(dest, filesystem)
    assert dest.destination_type == "dlt.destinations.filesystem"
    assert dest.destination_name == "filesystem"  # reads DESTINATION__FILESYSTEM__*
