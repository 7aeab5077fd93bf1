import { useEffect, useState } from "react";
import { downloadUrl, kindName } from "../api/assets";
import type { Asset } from "../gen/viarte/storage/v1/storage_pb";

export function AssetThumb({ asset }: { asset: Asset }) {
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    if (asset.hasThumbnail) {
      downloadUrl(asset.id, { thumbnail: true }).then(
        (url) => live && setSrc(url),
        () => live && setSrc(null),
      );
    }
    return () => {
      live = false;
    };
  }, [asset.id, asset.hasThumbnail]);
  const kind = kindName(asset.kind);
  return (
    <div className="thumb">
      {src ? <img src={src} alt={asset.name} draggable={false} /> : <span className="thumb-icon">{kind === "audio" ? "♪" : kind === "video" ? "▶" : "▣"}</span>}
    </div>
  );
}
