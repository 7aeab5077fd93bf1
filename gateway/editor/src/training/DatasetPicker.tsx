// The training dataset: image and video assets of the library, each with its caption (or the
// trigger word alone), and optionally a caption file (a text asset: JSON Lines or
// "<asset_id> <caption>" lines) listing more examples.
import { kindName } from "../api/assets";
import { AssetThumb } from "../components/AssetThumb";
import type { Asset } from "../gen/viarte/storage/v1/storage_pb";
import { AssetKind } from "../gen/viarte/type/v1/asset_pb";

export interface DatasetChoice {
  // asset id → caption ("" = the trigger word alone), in the order picked.
  examples: { assetId: string; caption: string }[];
  captionFileAssetId: string;
}

export function DatasetPicker(props: {
  assets: Asset[];
  value: DatasetChoice;
  onChange: (value: DatasetChoice) => void;
  fieldError: (path: string) => string | undefined;
}) {
  const { assets, value, onChange } = props;
  const media = assets.filter((a) => ["image", "video"].includes(kindName(a.kind)));
  const texts = assets.filter((a) => a.kind === AssetKind.TEXT);
  const picked = new Map(value.examples.map((e, i) => [e.assetId, i]));
  const toggle = (asset: Asset, on: boolean) =>
    onChange({ ...value, examples: on ? [...value.examples, { assetId: asset.id, caption: "" }] : value.examples.filter((e) => e.assetId !== asset.id) });
  const caption = (assetId: string, text: string) =>
    onChange({ ...value, examples: value.examples.map((e) => (e.assetId === assetId ? { ...e, caption: text } : e)) });
  return (
    <fieldset className="dataset" data-testid="dataset-picker">
      <legend>Dataset</legend>
      {media.length === 0 && <p className="muted small">Upload images or clips in the Library first.</p>}
      <ul className="dataset-list">
        {media.map((asset) => {
          const index = picked.get(asset.id);
          const error = index === undefined ? undefined : props.fieldError(`parameters.dataset.examples[${index}]`);
          return (
            <li key={asset.id} className={index === undefined ? "" : "picked"} data-testid="dataset-item" data-asset-id={asset.id}>
              <label className="checkbox">
                <input type="checkbox" checked={index !== undefined} onChange={(e) => toggle(asset, e.target.checked)} aria-label={`Train on ${asset.name}`} />
                <AssetThumb asset={asset} />
                <span className="name">{asset.name}</span>
              </label>
              {index !== undefined && (
                <input
                  className="caption"
                  aria-label={`Caption of ${asset.name}`}
                  placeholder="Caption (empty = the trigger word)"
                  value={value.examples[index].caption}
                  onChange={(e) => caption(asset.id, e.target.value)}
                  data-testid="caption-input"
                />
              )}
              {error && (
                <span className="violation" role="alert">
                  {error}
                </span>
              )}
            </li>
          );
        })}
      </ul>
      <label className="field">
        <span className="label">Caption file (optional)</span>
        <select value={value.captionFileAssetId} onChange={(e) => onChange({ ...value, captionFileAssetId: e.target.value })} data-testid="caption-file-select">
          <option value="">— none —</option>
          {texts.map((a) => (
            <option key={a.id} value={a.id}>
              {a.name}
            </option>
          ))}
        </select>
        {props.fieldError("parameters.dataset.caption_file") && (
          <span className="violation" role="alert">
            {props.fieldError("parameters.dataset.caption_file")}
          </span>
        )}
      </label>
    </fieldset>
  );
}
