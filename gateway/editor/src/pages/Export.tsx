import { useEffect, useRef, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { downloadUrl } from "../api/assets";
import { projects, render } from "../api/client";
import { fieldError, toUiError, type UiError } from "../api/errors";
import { describePlacement, describeProgress, followJob, initialView, stateName, TERMINAL, type JobView } from "../api/jobs";
import { ErrorBanner, Field, ProgressBar } from "../components/common";
import type { Project } from "../gen/viarte/render/v1/project_pb";
import { QualityPreset, type RenderJob } from "../gen/viarte/render/v1/render_pb";
import { JobState } from "../gen/viarte/type/v1/job_pb";

const SIZES: [string, number, number][] = [
  ["Project canvas", 0, 0],
  ["1920 × 1080", 1920, 1080],
  ["1280 × 720", 1280, 720],
  ["854 × 480", 854, 480],
  ["640 × 360", 640, 360],
];

export default function Export() {
  const { projectId = "" } = useParams();
  const [project, setProject] = useState<Project | null>(null);
  const [quality, setQuality] = useState(QualityPreset.STANDARD);
  const [size, setSize] = useState(0);
  const [upscale, setUpscale] = useState(false);
  const [name, setName] = useState("export.mp4");
  const [job, setJob] = useState<RenderJob | null>(null);
  const [view, setView] = useState<JobView | null>(null);
  const [link, setLink] = useState<string | null>(null);
  const [preview, setPreview] = useState<string | null>(null);
  const [error, setError] = useState<UiError | null>(null);
  const abort = useRef<AbortController | null>(null);

  useEffect(() => {
    projects.getProject({ id: projectId }).then(
      (reply) => {
        setProject(reply.project ?? null);
        if (reply.project) setName(`${reply.project.title.replace(/[^\w.-]+/g, "_") || "export"}.mp4`);
      },
      (err) => setError(toUiError(err)),
    );
    return () => abort.current?.abort();
  }, [projectId]);

  async function start() {
    if (!project) return;
    setError(null);
    setLink(null);
    setPreview(null);
    const [, width, height] = SIZES[size];
    try {
      const reply = await render.createRenderJob({
        requestId: crypto.randomUUID(),
        parameters: { timeline: project.timeline, quality, outputWidth: width, outputHeight: height, upscale, outputName: name, projectId },
      });
      const created = reply.job!;
      setJob(created);
      setView(initialView(created.status));
      const controller = new AbortController();
      abort.current = controller;
      const final = await followJob<RenderJob>(
        (afterSequence, signal) => render.watchRenderJob({ id: created.id, afterSequence }, { signal }),
        setJob,
        setView,
        controller.signal,
      );
      if (final.state === JobState.SUCCEEDED) {
        const done = (await render.getRenderJob({ id: created.id })).job!;
        setJob(done);
        const assetId = done.result!.videoAssetId;
        setLink(await downloadUrl(assetId, { attachment: true }));
        setPreview(await downloadUrl(assetId));
      }
    } catch (err) {
      setError(toUiError(err));
    }
  }

  async function cancel() {
    if (job) await render.cancelRenderJob({ id: job.id }).catch((err: unknown) => setError(toUiError(err)));
  }

  const running = view !== null && !TERMINAL.has(view.state);
  return (
    <section className="page export" data-testid="export-page">
      <Link to={`/projects/${projectId}`}>← Back to the editor</Link>
      <h1>Export {project?.title}</h1>
      <ErrorBanner error={error} onClose={() => setError(null)} />
      {error && Object.keys(error.fields).length > 0 && (
        <ul className="violations" data-testid="violations">
          {Object.entries(error.fields).map(([field, description]) => (
            <li key={field}>
              <code>{field}</code>: {description}
            </li>
          ))}
        </ul>
      )}
      <div className="card export-form">
        <Field label="Quality" error={fieldError(error, "parameters.quality")}>
          <select value={quality} onChange={(e) => setQuality(Number(e.target.value))} data-testid="quality-select">
            <option value={QualityPreset.DRAFT}>Draft (fast)</option>
            <option value={QualityPreset.STANDARD}>Standard</option>
            <option value={QualityPreset.HIGH}>High</option>
          </select>
        </Field>
        <Field label="Size" error={fieldError(error, "parameters.output_width", "parameters.output_height")}>
          <select value={size} onChange={(e) => setSize(Number(e.target.value))} data-testid="size-select">
            {SIZES.map(([label], i) => (
              <option key={label} value={i}>
                {label}
              </option>
            ))}
          </select>
        </Field>
        <label className="checkbox">
          <input type="checkbox" checked={upscale} onChange={(e) => setUpscale(e.target.checked)} data-testid="upscale-toggle" /> Upscale ×2 (Real-ESRGAN)
        </label>
        <Field label="File name" error={fieldError(error, "parameters.output_name")}>
          <input value={name} onChange={(e) => setName(e.target.value)} />
        </Field>
        <button className="primary" onClick={() => void start()} disabled={!project || running} data-testid="start-export">
          Export MP4
        </button>
      </div>
      {view && (
        <div className="card" data-testid="render-panel" data-state={stateName(view.state)} data-events={view.events}>
          <ProgressBar fraction={view.state === JobState.SUCCEEDED ? 1 : (view.progress?.fraction ?? 0)} label={describeProgress(view)} testId="render-progress" />
          {view.placement && (
            <p className="muted small" data-testid="render-placement">
              Runs on {describePlacement(view.placement)}
            </p>
          )}
          {running && (
            <button className="danger" onClick={() => void cancel()}>
              Cancel
            </button>
          )}
          {job?.result && (
            <p className="small">
              {job.result.width}×{job.result.height} · {job.result.durationSeconds.toFixed(2)} s · {job.result.encoder}
            </p>
          )}
          {preview && <video className="preview" src={preview} controls data-testid="export-preview" />}
          {link && (
            <a className="button primary" href={link} download={name} data-testid="download-link">
              Download MP4
            </a>
          )}
        </div>
      )}
    </section>
  );
}
