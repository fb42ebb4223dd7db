"""The browser client's typed catalog (clients/web/src/core/catalog.ts) names exactly
the hub's event types, and each payload interface the fields the hub publishes."""

from __future__ import annotations

import re
from pathlib import Path

from hub.catalog import CATALOG

CATALOG_TS = Path(__file__).resolve().parents[2] / "clients/web/src/core/catalog.ts"


def _block(source: str, name: str) -> str:
    match = re.search(rf"export interface {name} \{{(.*?)\n\}}", source, re.S)
    assert match, f"interface {name} not found in catalog.ts"
    return match.group(1)


def test_the_web_catalog_has_every_event_type() -> None:
    payloads = _block(CATALOG_TS.read_text(), "EventPayloads")
    assert set(re.findall(r'"([a-z_]+:[a-z_]+)":', payloads)) == set(CATALOG)


def test_each_payload_interface_has_the_published_fields() -> None:
    source = CATALOG_TS.read_text()
    payloads = dict(re.findall(r'"([a-z_]+:[a-z_]+)": (\w+);', _block(source, "EventPayloads")))
    for event_type, interface in payloads.items():
        ts_fields = set(re.findall(r"^\s+(\w+)\??:", _block(source, interface), re.M))
        published = set(CATALOG[event_type].json_schema()["properties"])
        assert ts_fields == published, (event_type, ts_fields ^ published)
