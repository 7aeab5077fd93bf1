"""``viarte assets``, and the upload/download helpers the job commands share (a local file given
where an asset id is expected is uploaded first)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from viarte.cli.common import Ctx, app, context, fail, handled, jsonable
from viarte.cli.progress import TransferProgress

__all__ = ["asset_ref", "assets_app", "download_asset", "upload_file"]

assets_app = typer.Typer(help="Images, videos and audio in storage.", no_args_is_help=True)
app.add_typer(assets_app, name="assets")


def upload_file(c: Ctx, path: Path, *, presigned: bool = False, name: str | None = None) -> Any:
    if not path.is_file():
        fail(f"no such file: {path}")
    method: Literal["stream", "presigned"] = "presigned" if presigned else "stream"
    if c.json:
        return c.client().assets.upload(path, name=name, method=method)
    with TransferProgress(c.err, f"upload {path.name}") as bar:
        return c.client().assets.upload(path, name=name, method=method, progress=bar.callback)


def _asset_table(c: Ctx, assets: list[Any]) -> None:
    table = Table("id", "name", "kind", "size", "media")
    for a in assets:
        m = a.media
        media = f"{m.width}x{m.height}" if m.width else ""
        if m.duration_seconds:
            media += f" {m.duration_seconds:.2f}s"
        if m.fps:
            media += f" {m.fps:g}fps"
        table.add_row(a.id, a.name, str(a.kind), f"{a.size_bytes:,}", media.strip())
    c.out.print(table)


@assets_app.command("upload")
@handled
def assets_upload(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files to upload.")],
    presigned: Annotated[bool, typer.Option(help="PUT straight to S3 through a presigned URL.")] = False,
    name: Annotated[str | None, typer.Option(help="Asset name (one file only).")] = None,
) -> None:
    """Upload files (streamed through the storage service, or presigned)."""
    c = context(ctx)
    if name and len(paths) > 1:
        fail("--name needs exactly one file")
    assets = [upload_file(c, p, presigned=presigned, name=name) for p in paths]
    c.emit({"assets": assets}, lambda: _asset_table(c, assets))


@assets_app.command("list")
@handled
def assets_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="image, video or audio")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
) -> None:
    """Your assets, newest first."""
    c = context(ctx)
    if kind not in (None, "image", "video", "audio"):
        fail("--kind must be image, video or audio")
    assets = []
    for asset in c.client().assets.list_all(kind=kind):  # type: ignore[arg-type]
        assets.append(asset)
        if len(assets) >= limit:
            break
    c.emit({"assets": assets}, lambda: _asset_table(c, assets))


@assets_app.command("info")
@handled
def assets_info(ctx: typer.Context, asset_id: str) -> None:
    """One asset's metadata and media facts."""
    c = context(ctx)
    asset = c.client().assets.get(asset_id)
    c.emit(asset, lambda: c.out.print(jsonable(asset)))


@assets_app.command("url")
@handled
def assets_url(
    ctx: typer.Context, asset_id: str,
    expire: Annotated[int, typer.Option(help="Seconds the URL stays valid; 0 = default.")] = 0,
    attachment: bool = False, thumbnail: bool = False,
) -> None:
    """A presigned download URL."""
    c = context(ctx)
    url = c.client().assets.url(asset_id, expire_seconds=expire, attachment=attachment, thumbnail=thumbnail)
    c.emit({"url": url}, lambda: typer.echo(url))


@assets_app.command("download")
@handled
def assets_download(
    ctx: typer.Context,
    asset_id: str,
    dest: Annotated[Path | None, typer.Argument(help="File or folder (default: current folder).")] = None,
    thumbnail: bool = False,
    via_url: Annotated[bool, typer.Option(help="Download through a presigned URL instead of the gRPC stream.")] = False,
) -> None:
    """Download an asset."""
    c = context(ctx)
    path = download_asset(c, asset_id, dest, thumbnail=thumbnail, via_url=via_url)
    c.emit({"path": path}, lambda: c.out.print(f"saved {path}"))


def download_asset(c: Ctx, asset_id: str, dest: Path | None, *, thumbnail: bool = False, via_url: bool = False) -> Path:
    method: Literal["stream", "url"] = "url" if via_url else "stream"
    if c.json:
        return c.client().assets.download(asset_id, dest, thumbnail=thumbnail, method=method)
    with TransferProgress(c.err, f"download {asset_id}") as bar:
        return c.client().assets.download(asset_id, dest, thumbnail=thumbnail, method=method, progress=bar.callback)


@assets_app.command("rm")
@handled
def assets_rm(ctx: typer.Context, asset_ids: list[str]) -> None:
    """Delete assets."""
    c = context(ctx)
    for asset_id in asset_ids:
        c.client().assets.delete(asset_id)
    c.emit({"deleted": asset_ids}, lambda: c.out.print(f"deleted {len(asset_ids)} asset(s)"))


def asset_ref(c: Ctx, value: str | None) -> str:
    """An existing asset id, or a local file to upload first."""
    if not value:
        return ""
    path = Path(value)
    if path.is_file():
        asset = upload_file(c, path)
        c.info(f"uploaded {path} as {asset.id}")
        return str(asset.id)
    return value
