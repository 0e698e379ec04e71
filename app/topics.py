"""The topic catalog (``topics/catalog.yml``) and the JSON Schemas of its payloads.

Both ship inside the package (``app/defaults/topics``); the top-level
``topics/`` of a checkout links there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field

from app import contracts
from app.errors import UserError
from app.policyfile import bundled_path, validate_document


class TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    direction: Literal["in", "out"]
    producer: str | None = None
    consumer: str | None = None
    key: str
    value: str
    partitions: int = Field(gt=0)
    cleanup_policy: Literal["delete", "compact"]
    retention_days: int | None = Field(default=None, gt=0)


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Literal[1] = 1
    topics: dict[str, TopicSpec]


def catalog_path() -> Path:
    """The catalog shipped inside the package."""
    return bundled_path("topics", "catalog.yml")


def default_catalog() -> Catalog:
    """The shipped catalog, read when called (the worker calls it when it builds its app)."""
    return load_catalog(catalog_path())


def input_topics(catalog: Catalog | None = None) -> tuple[str, ...]:
    """The catalog's input topics (``direction: in``), in catalog order: what the
    worker consumes and what ``incident-intel tool`` reads from files."""
    catalog = catalog or default_catalog()
    return tuple(name for name, spec in catalog.topics.items() if spec.direction == "in")


def load_catalog(path: str | Path) -> Catalog:
    """Read the catalog; every ``value`` must name a model in ``app.contracts``."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    catalog = validate_document(str(path), document, Catalog)
    for name, spec in catalog.topics.items():
        model = getattr(contracts, spec.value, None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise UserError(f"{path}: topics.{name}.value: no contract model {spec.value!r}")
    return catalog


def schema_for(topic: str, spec: TopicSpec) -> dict[str, Any]:
    """The JSON Schema of one topic's value, titled and described for consumers."""
    model: type[BaseModel] = getattr(contracts, spec.value)
    schema = model.model_json_schema(by_alias=True, mode="serialization")
    schema["$id"] = f"topics/schemas/{topic}.json"
    schema["description"] = f"Value of topic {topic!r} (key: {spec.key}). " + (
        (model.__doc__ or "").strip().splitlines() or [""]
    )[0]
    return schema


def render_schemas(catalog: Catalog) -> dict[str, bytes]:
    """File name → canonical bytes of every topic's schema."""
    return {
        f"{topic}.json": orjson.dumps(
            schema_for(topic, spec), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        )
        + b"\n"
        for topic, spec in sorted(catalog.topics.items())
    }
