// One training job, live: progress and ETA, the loss chart (one point per step from the Watch
// events' metrics), sample clips as they are announced (playable video assets, keyed by step and
// asset id), cancel, and the resulting LoRA with "Use in Generate".
import { useEffect, useRef, useState } from "react";
import { useNavigate } from "react-router-dom";
import { downloadUrl } from "../api/assets";
import { training } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import { describePlacement, describeProgress, followJob, initialView, stateName, TERMINAL, type JobView } from "../api/jobs";
import { LossChart } from "../components/Charts";
import { ErrorBanner, ProgressBar } from "../components/common";
import type { TrainingJob } from "../gen/viarte/training/v1/training_pb";
import { JobState } from "../gen/viarte/type/v1/job_pb";
import { applyEvent, EMPTY_PROGRESS, type Sample, type TrainingProgress } from "./progress";

function SampleClip({ sample }: { sample: Sample }) {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    downloadUrl(sample.assetId).then((u) => live && setUrl(u), () => live && setUrl(null));
    return () => {
      live = false;
    };
  }, [sample.assetId]);
  return (
    <figure className="sample" data-testid="training-sample" data-step={sample.step} data-asset-id={sample.assetId}>
      {url ? <video src={url} controls loop muted playsInline aria-label={`Sample at step ${sample.step}`} /> : <div className="thumb" />}
      <figcaption className="small muted">step {sample.step}</figcaption>
    </figure>
  );
}

export function TrainingJobView({ job: initial, onChange }: { job: TrainingJob; onChange: (job: TrainingJob) => void }) {
  const [job, setJob] = useState(initial);
  const [view, setView] = useState<JobView>(initialView(initial.status));
  const [progress, setProgress] = useState<TrainingProgress>(EMPTY_PROGRESS);
  const [error, setError] = useState<UiError | null>(null);
  const changed = useRef(onChange);
  changed.current = onChange;

  useEffect(() => {
    const controller = new AbortController();
    setProgress(EMPTY_PROGRESS);
    followJob<TrainingJob>(
      (afterSequence, signal) => training.watchTrainingJob({ id: initial.id, afterSequence }, { signal }),
      (j) => {
        setJob(j);
        changed.current(j);
      },
      setView,
      controller.signal,
      (event) => setProgress((p) => applyEvent(p, event)),
    )
      .then(async (final) => {
        // The result (LoRA id, samples) is on the job once it ended.
        // The charge follows once the account service recorded the end (cost.final): ask again a
        // few times so "Charged" replaces the estimate without a reload.
        for (let attempt = 0; TERMINAL.has(final.state) && !controller.signal.aborted && attempt < 30; attempt++) {
          const done = (await training.getTrainingJob({ id: initial.id })).job;
          if (done) {
            setJob(done);
            changed.current(done);
          }
          if (!done || done.status?.cost?.final) break;
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      })
      .catch((err: unknown) => !controller.signal.aborted && setError(toUiError(err)));
    return () => controller.abort();
  }, [initial.id]);

  const navigate = useNavigate();
  const total = view.progress?.totalSteps || job.parameters?.steps || 0;
  const running = !TERMINAL.has(view.state);
  const lora = job.result?.loraId;
  const cost = job.status?.cost;
  async function cancel() {
    try {
      await training.cancelTrainingJob({ id: job.id });
    } catch (err) {
      setError(toUiError(err));
    }
  }
  return (
    <div className="card" data-testid="training-job" data-job-id={job.id} data-state={stateName(view.state)} data-events={view.events}>
      <h2>{job.parameters?.name || `Training ${job.id.slice(0, 8)}`}</h2>
      <ErrorBanner error={error} onClose={() => setError(null)} />
      <ProgressBar fraction={view.state === JobState.SUCCEEDED ? 1 : (view.progress?.fraction ?? 0)} label={describeProgress(view)} testId="training-progress" />
      <p className="muted small" data-testid="training-status">
        {describeProgress(view)}
        {progress.learningRate !== null && ` · lr ${progress.learningRate.toExponential(2)}`}
        {progress.gradNorm !== null && ` · grad norm ${progress.gradNorm.toFixed(3)}`}
      </p>
      {view.placement && (
        <p className="muted small" data-testid="training-placement">
          Runs on {describePlacement(view.placement)}
        </p>
      )}
      {cost && (
        <p className="muted small" data-testid="training-cost">
          {cost.final ? `Charged ${cost.credits} credits` : `Estimated ${cost.estimatedCredits} credits`}
        </p>
      )}
      <LossChart points={progress.losses} totalSteps={total} />
      {progress.checkpoints.length > 0 && (
        <p className="small muted" data-testid="training-checkpoints">
          Checkpoints at step {progress.checkpoints.map((c) => c.step).join(", ")}
        </p>
      )}
      {progress.samples.length > 0 && (
        <div className="samples" data-testid="training-samples">
          {progress.samples.map((s) => (
            <SampleClip key={s.assetId} sample={s} />
          ))}
        </div>
      )}
      <div className="row">
        {running && (
          <button className="danger" onClick={() => void cancel()} data-testid="cancel-training">
            Cancel
          </button>
        )}
        {lora && (
          <button className="primary" data-testid="use-lora" data-lora-id={lora} onClick={() => navigate("/generate", { state: { lora, model: job.parameters?.baseModel } })}>
            Use in Generate
          </button>
        )}
        {job.result && lora && (
          <span className="small muted" data-testid="training-result">
            LoRA after {job.result.stepsCompleted} steps, final loss {job.result.finalLoss.toFixed(4)}
            {job.result.resumedFromStep ? ` (resumed from step ${job.result.resumedFromStep})` : ""}
          </span>
        )}
      </div>
    </div>
  );
}
