// The Training page (issue 17): pick a dataset, set the parameters, see the price estimate,
// start, and follow the job live (TrainingJobView). Below: earlier jobs and the trained LoRAs.
import { useCallback, useEffect, useMemo, useState, type FormEvent } from "react";
import { useAssets } from "../api/assets";
import { generation, loras as loraClient, training, usage } from "../api/client";
import { fieldError, toUiError, type UiError } from "../api/errors";
import { stateName } from "../api/jobs";
import { ErrorBanner, Field } from "../components/common";
import { JobKind } from "../gen/viarte/account/v1/account_pb";
import { ModelFamily, type Model } from "../gen/viarte/inference/v1/generation_pb";
import type { Lora, TrainingJob } from "../gen/viarte/training/v1/training_pb";
import { JobState } from "../gen/viarte/type/v1/job_pb";
import { DatasetPicker, type DatasetChoice } from "../training/DatasetPicker";
import { TrainingJobView } from "../training/TrainingJobView";

// Numbers as typed (strings): empty = the server's default for that field.
const NUMBERS = ["rank", "alpha", "learningRate", "steps", "batchSize", "width", "height", "numFrames", "seed", "sampleEveryNSteps", "checkpointEveryNSteps"] as const;
type NumberField = (typeof NUMBERS)[number];
type Form = Record<NumberField, string> & { baseModel: string; name: string; triggerWord: string; validationPrompt: string };

const INITIAL: Form = {
  baseModel: "", name: "", triggerWord: "", validationPrompt: "", rank: "", alpha: "", learningRate: "", steps: "100", batchSize: "",
  width: "", height: "", numFrames: "", seed: "", sampleEveryNSteps: "", checkpointEveryNSteps: "",
};

const num = (value: string) => (value.trim() === "" ? 0 : Number(value));

function trainable(m: Model): boolean {
  return Boolean(m.trainingMemory) || m.family === ModelFamily.WAN;
}

export default function Training() {
  const { assets } = useAssets();
  const [models, setModels] = useState<Model[]>([]);
  const [form, setForm] = useState<Form>(INITIAL);
  const [dataset, setDataset] = useState<DatasetChoice>({ examples: [], captionFileAssetId: "" });
  const [estimate, setEstimate] = useState<{ credits: bigint; formula: string } | null>(null);
  const [error, setError] = useState<UiError | null>(null);
  const [jobs, setJobs] = useState<TrainingJob[]>([]);
  const [active, setActive] = useState<TrainingJob | null>(null);
  const [loras, setLoras] = useState<Lora[]>([]);
  const model = models.find((m) => m.id === form.baseModel);

  const loadLists = useCallback(async () => {
    try {
      const [j, l] = await Promise.all([training.listTrainingJobs({ pageSize: 20 }), loraClient.listLoras({ pageSize: 50 })]);
      setJobs(j.jobs);
      setLoras(l.loras);
    } catch (err) {
      setError(toUiError(err));
    }
  }, []);

  useEffect(() => {
    generation.listModels({}).then(
      (reply) => {
        const usable = reply.models.filter(trainable);
        setModels(usable);
        setForm((f) => ({ ...f, baseModel: f.baseModel || usable[0]?.id || "" }));
      },
      (err) => setError(toUiError(err)),
    );
    void loadLists();
  }, [loadLists]);

  // The estimate from the account service's price function (the one that prices the record).
  const quantities = useMemo(() => {
    const l = model?.limits;
    const frames = num(form.numFrames) || 1;
    return {
      width: num(form.width) || l?.defaultWidth || 0,
      height: num(form.height) || l?.defaultHeight || 0,
      frames: BigInt(Math.max(1, frames) * (num(form.batchSize) || 1)),
      steps: num(form.steps) || 500,
    };
  }, [model, form.width, form.height, form.numFrames, form.batchSize, form.steps]);
  useEffect(() => {
    if (!form.baseModel) return;
    let live = true;
    usage.getPriceEstimate({ kind: JobKind.TRAINING, model: form.baseModel, quantities }).then(
      (reply) => live && setEstimate({ credits: reply.credits, formula: reply.formula }),
      () => live && setEstimate(null),
    );
    return () => {
      live = false;
    };
  }, [form.baseModel, quantities]);

  async function start(event: FormEvent) {
    event.preventDefault();
    setError(null);
    try {
      const reply = await training.createTrainingJob({
        requestId: crypto.randomUUID(),
        parameters: {
          baseModel: form.baseModel,
          name: form.name,
          triggerWord: form.triggerWord,
          validationPrompt: form.validationPrompt,
          rank: num(form.rank),
          alpha: num(form.alpha),
          learningRate: num(form.learningRate),
          steps: num(form.steps),
          batchSize: num(form.batchSize),
          width: num(form.width),
          height: num(form.height),
          numFrames: num(form.numFrames),
          seed: form.seed.trim() === "" ? undefined : BigInt(form.seed.trim()),
          sampleEveryNSteps: num(form.sampleEveryNSteps),
          checkpointEveryNSteps: num(form.checkpointEveryNSteps),
          dataset: { examples: dataset.examples, captionFileAssetId: dataset.captionFileAssetId },
        },
      });
      if (reply.job) {
        setActive(reply.job);
        setJobs((js) => [reply.job!, ...js.filter((j) => j.id !== reply.job!.id)]);
      }
    } catch (err) {
      setError(toUiError(err));
    }
  }

  async function deleteLora(lora: Lora) {
    try {
      await loraClient.deleteLora({ id: lora.id });
      setLoras((ls) => ls.filter((l) => l.id !== lora.id));
    } catch (err) {
      setError(toUiError(err));
    }
  }

  const field = (name: string) => fieldError(error, `parameters.${name}`);
  const input = (key: NumberField, label: string, snake: string, hint?: string) => (
    <Field label={label} error={field(snake)} hint={hint}>
      <input name={key} inputMode="decimal" value={form[key]} onChange={(e) => setForm((f) => ({ ...f, [key]: e.target.value }))} />
    </Field>
  );
  const onJobChange = useCallback((job: TrainingJob) => {
    setJobs((js) => js.map((j) => (j.id === job.id ? job : j)));
    if (job.status && [JobState.SUCCEEDED, JobState.CANCELLED].includes(job.status.state)) void loraClient.listLoras({ pageSize: 50 }).then((l) => setLoras(l.loras), () => {});
  }, []);
  return (
    <section className="page training" data-testid="training-page">
      <form className="card" onSubmit={start} data-testid="training-form">
        <h1>Train a LoRA</h1>
        <ErrorBanner error={error} onClose={() => setError(null)} />
        <Field label="Base model" error={field("base_model")}>
          <select name="baseModel" value={form.baseModel} onChange={(e) => setForm((f) => ({ ...f, baseModel: e.target.value }))} data-testid="base-model-select">
            {models.map((m) => (
              <option key={m.id} value={m.id}>
                {m.displayName || m.id}
              </option>
            ))}
          </select>
        </Field>
        <DatasetPicker assets={assets} value={dataset} onChange={setDataset} fieldError={(p) => fieldError(error, p)} />
        <div className="grid4">
          <Field label="Name" error={field("name")}>
            <input name="name" value={form.name} onChange={(e) => setForm((f) => ({ ...f, name: e.target.value }))} />
          </Field>
          <Field label="Trigger word" error={field("trigger_word")}>
            <input name="triggerWord" value={form.triggerWord} onChange={(e) => setForm((f) => ({ ...f, triggerWord: e.target.value }))} />
          </Field>
          {input("steps", "Steps", "steps")}
          {input("learningRate", "Learning rate", "learning_rate", "Empty = 1e-4")}
          {input("rank", "Rank", "rank", "Empty = 16")}
          {input("alpha", "Alpha", "alpha", "Empty = rank")}
          {input("batchSize", "Batch size", "batch_size", "Empty = 1")}
          {input("seed", "Seed", "seed", "Empty = random")}
          {input("width", "Width", "width", "Empty = the model's")}
          {input("height", "Height", "height", "Empty = the model's")}
          {input("numFrames", "Frames", "num_frames", "Empty = the model's")}
          {input("checkpointEveryNSteps", "Checkpoint every N steps", "checkpoint_every_n_steps", "Empty = none")}
        </div>
        <div className="grid4">
          {input("sampleEveryNSteps", "Sample every N steps", "sample_every_n_steps", "Empty = no samples")}
        </div>
        <Field label="Validation prompt (for samples)" error={field("validation_prompt")}>
          <input name="validationPrompt" value={form.validationPrompt} onChange={(e) => setForm((f) => ({ ...f, validationPrompt: e.target.value }))} />
        </Field>
        <p className="small" data-testid="training-estimate" data-credits={estimate?.credits.toString() ?? ""}>
          {estimate ? `Estimated cost: ${estimate.credits} credits (${estimate.formula})` : "Estimating…"}
        </p>
        <button type="submit" className="primary" disabled={!form.baseModel} data-testid="start-training">
          Start training
        </button>
      </form>

      <div className="gen-side">
        {active && <TrainingJobView key={active.id} job={active} onChange={onJobChange} />}
        <div className="card">
          <h2>Training jobs</h2>
          <ul className="job-list" data-testid="training-jobs">
            {jobs.map((job) => (
              <li key={job.id}>
                <button className="link" onClick={() => setActive(job)}>
                  {job.parameters?.name || job.id.slice(0, 8)}
                </button>
                <span className={`badge ${stateName(job.status?.state ?? JobState.QUEUED)}`}>{stateName(job.status?.state ?? JobState.QUEUED)}</span>
              </li>
            ))}
          </ul>
        </div>
        <div className="card">
          <h2>LoRAs</h2>
          <ul className="job-list" data-testid="lora-list">
            {loras.map((lora) => (
              <li key={lora.id} data-testid="lora" data-lora-id={lora.id}>
                <span>
                  {lora.name} <span className="muted small">{lora.baseModel} · {lora.steps} steps{lora.partial ? " · partial" : ""}</span>
                </span>
                <button className="link danger" onClick={() => void deleteLora(lora)} aria-label={`Delete ${lora.name}`}>
                  Delete
                </button>
              </li>
            ))}
          </ul>
          {loras.length === 0 && <p className="muted small">No LoRAs yet.</p>}
        </div>
      </div>
    </section>
  );
}
