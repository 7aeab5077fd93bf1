// The inspector's effects for the selected clip (issue 18): audio EQ preset, colour LUT (pick one
// of the user's LUT assets or upload a .cube) and the clip's track's music ducking. Every change is
// one undoable edit through `apply`; the document operations live in timeline/effects.ts.
import { useState } from "react";
import { uploadFile } from "../api/assets";
import { toUiError, type UiError } from "../api/errors";
import type { Asset } from "../gen/viarte/storage/v1/storage_pb";
import { AssetKind } from "../gen/viarte/type/v1/asset_pb";
import { EQ_PRESETS, setAudioEq, setDucking, setLut } from "../timeline/effects";
import type { Clip, Timeline, Track } from "../timeline/model";

const LUT_TYPE = "application/x-cube-lut";

interface Props {
  timeline: Timeline;
  track: Track;
  clip: Clip;
  assets: Asset[];
  apply(op: (tl: Timeline) => Timeline): void;
  onUploaded(): void;
  onError(error: UiError): void;
}

export function EffectsInspector({ timeline, track, clip, assets, apply, onUploaded, onError }: Props) {
  const [uploading, setUploading] = useState(false);
  const sound = clip.type === "video" || clip.type === "audio";
  const picture = clip.type === "video" || clip.type === "image";
  const luts = assets.filter((a) => a.kind === AssetKind.LUT);
  const lut = clip.filters?.lutAssetId ?? "";
  const voices = timeline.tracks.filter((t) => t.id !== track.id && t.type !== "text" && !t.ducking);

  async function upload(file: File) {
    setUploading(true);
    try {
      // Browsers give .cube files no type: storage needs the LUT one (it parses the table whole).
      const asset = await uploadFile(new File([file], file.name, { type: LUT_TYPE }), () => {});
      onUploaded();
      apply((tl) => setLut(tl, clip.id, asset.id));
    } catch (err) {
      onError(toUiError(err));
    } finally {
      setUploading(false);
    }
  }

  return (
    <div className="effects" data-testid="effects-inspector">
      {sound && (
        <label className="field">
          <span className="label">EQ</span>
          <select value={clip.filters?.audioEq ?? ""} data-testid="clip-eq" onChange={(e) => apply((tl) => setAudioEq(tl, clip.id, e.target.value))}>
            {EQ_PRESETS.map(([name, label]) => (
              <option key={name} value={name}>{label}</option>
            ))}
          </select>
        </label>
      )}
      {picture && (
        <label className="field">
          <span className="label">Colour LUT</span>
          <select value={lut} data-testid="clip-lut" onChange={(e) => apply((tl) => setLut(tl, clip.id, e.target.value))}>
            <option value="">None</option>
            {lut && !luts.some((a) => a.id === lut) && <option value={lut}>{lut.slice(0, 8)}…</option>}
            {luts.map((a) => (
              <option key={a.id} value={a.id}>{a.name}</option>
            ))}
          </select>
        </label>
      )}
      {picture && (
        <label className="field">
          <span className="label">{uploading ? "Uploading LUT…" : "Upload a .cube LUT"}</span>
          <input type="file" accept=".cube" disabled={uploading} data-testid="lut-upload" onChange={(e) => { const f = e.target.files?.[0]; if (f) void upload(f); e.target.value = ""; }} />
        </label>
      )}
      {sound && track.type !== "text" && (
        <label className="field">
          <span className="label">Duck this track under</span>
          <select
            value={track.ducking?.voiceTrackId ?? ""}
            data-testid="track-ducking"
            onChange={(e) => apply((tl) => setDucking(tl, track.id, e.target.value || null))}
          >
            <option value="">No ducking</option>
            {voices.map((t) => (
              <option key={t.id} value={t.id}>{t.name}</option>
            ))}
          </select>
        </label>
      )}
    </div>
  );
}
