import { useRef, useState } from "react";
import { downloadUrl, kindName, uploadFile, useAssets } from "../api/assets";
import { storage } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import { AssetThumb } from "../components/AssetThumb";
import { ErrorBanner, ProgressBar } from "../components/common";

interface UploadState {
  name: string;
  fraction: number;
}

function formatBytes(bytes: bigint): string {
  const n = Number(bytes);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export default function Assets() {
  const { assets, error: listError, loading, reload } = useAssets();
  const [uploads, setUploads] = useState<UploadState[]>([]);
  const [error, setError] = useState<UiError | null>(null);
  const input = useRef<HTMLInputElement>(null);

  async function upload(files: FileList | null) {
    if (!files) return;
    setError(null);
    for (const file of [...files]) {
      const entry = { name: file.name, fraction: 0 };
      setUploads((u) => [...u, entry]);
      try {
        await uploadFile(file, (fraction) =>
          setUploads((u) => u.map((x) => (x.name === file.name ? { ...x, fraction } : x))),
        );
      } catch (err) {
        setError(toUiError(err)); // XHR failures arrive as plain Errors: their message is shown as is
      } finally {
        setUploads((u) => u.filter((x) => x.name !== file.name));
      }
    }
    if (input.current) input.current.value = "";
    await reload();
  }

  async function remove(id: string) {
    try {
      await storage.deleteAsset({ assetId: id });
      await reload();
    } catch (err) {
      setError(toUiError(err));
    }
  }

  async function open(id: string) {
    try {
      window.open(await downloadUrl(id), "_blank", "noopener");
    } catch (err) {
      setError(toUiError(err));
    }
  }

  return (
    <section className="page" data-testid="assets-page">
      <div className="page-head">
        <h1>Library</h1>
        <label className="button">
          Upload files
          <input ref={input} type="file" data-testid="upload-input" multiple accept="image/*,video/*,audio/*" hidden onChange={(e) => void upload(e.target.files)} />
        </label>
      </div>
      <ErrorBanner error={error ?? listError} onClose={() => setError(null)} />
      {uploads.map((u) => (
        <div key={u.name} className="upload-row">
          <span>{u.name}</span>
          <ProgressBar fraction={u.fraction} testId="upload-progress" />
        </div>
      ))}
      {loading ? <p>Loading…</p> : assets.length === 0 && <p className="muted">No assets yet. Upload an image, a video or some audio.</p>}
      <div className="asset-grid">
        {assets.map((asset) => (
          <div key={asset.id} className="asset-card" data-testid="asset-card" data-asset-id={asset.id} data-kind={kindName(asset.kind)}>
            <AssetThumb asset={asset} />
            <div className="asset-meta">
              <strong title={asset.name}>{asset.name}</strong>
              <span className="muted">
                {kindName(asset.kind)} · {formatBytes(asset.sizeBytes)}
                {asset.media && asset.media.durationSeconds > 0 && ` · ${asset.media.durationSeconds.toFixed(1)} s`}
                {asset.media && asset.media.width > 0 && ` · ${asset.media.width}×${asset.media.height}`}
              </span>
            </div>
            <div className="asset-actions">
              <button className="link" onClick={() => void open(asset.id)}>Open</button>
              <button className="link danger" onClick={() => void remove(asset.id)}>Delete</button>
            </div>
          </div>
        ))}
      </div>
    </section>
  );
}
