"""`incident-intel topics …`: the topic catalog and its JSON Schemas."""

from __future__ import annotations

from pathlib import Path

import click

from app.topics import Catalog, default_catalog, load_catalog, render_schemas

_CATALOG = click.option("--catalog", "catalog_path", default=None,
                        type=click.Path(dir_okay=False),
                        help="Topic catalog to read [default: the one shipped in the package].")


def _catalog(path: str | None) -> Catalog:
    return default_catalog() if path is None else load_catalog(path)


@click.group("topics")
def command() -> None:
    """Topic catalog and JSON Schemas of every payload."""


@command.command("schemas")
@_CATALOG
@click.option("--out", "out_dir", default="topics/schemas", show_default=True,
              type=click.Path(file_okay=False), help="Directory to write the schemas into.")
@click.option("--check", is_flag=True, help="Do not write; exit 1 if a schema file differs.")
def schemas(catalog_path: str | None, out_dir: str, check: bool) -> None:
    """Write one JSON Schema per topic, generated from the contract models."""
    rendered = render_schemas(_catalog(catalog_path))
    out = Path(out_dir)
    stale = [name for name, data in rendered.items()
             if not (out / name).is_file() or (out / name).read_bytes() != data]
    if check:
        for name in stale:
            click.echo(f"{out / name}: differs from the contract models", err=True)
        raise SystemExit(1 if stale else 0)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in rendered.items():
        (out / name).write_bytes(data)
    click.echo(f"wrote {len(rendered)} schemas to {out} ({len(stale)} changed)")


@command.command("list")
@_CATALOG
def list_topics(catalog_path: str | None) -> None:
    """Print every topic with its key, partitions and cleanup policy."""
    for name, spec in _catalog(catalog_path).topics.items():
        click.echo(f"{name:20} {spec.direction:3} key={spec.key!r} partitions={spec.partitions} "
                   f"cleanup={spec.cleanup_policy} value={spec.value}")
