import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { useLocation } from "react-router-dom";
import { downloadUrl, kindName, useAssets } from "../api/assets";
import { assistant, generation, loras as loraClient } from "../api/client";
import { fieldError, toUiError, type UiError } from "../api/errors";
import { describePlacement, describeProgress, followJob, initialView, stateName, TERMINAL, type JobView } from "../api/jobs";
import { ErrorBanner, Field, ProgressBar } from "../components/common";
import { Task, type GenerationJob, type GenerationParameters, type Model } from "../gen/viarte/inference/v1/generation_pb";
import type { Lora } from "../gen/viarte/training/v1/training_pb";
import { JobState } from "../gen/viarte/type/v1/job_pb";

interface Form {
  model: string;
  task: Task;
  prompt: string;
  negativePrompt: string;
  imageAssetId: string;
  faceSwap: boolean;
  faceAssetId: string;
  seed: string;
  width: number;
  height: number;
  numFrames: number;
  steps: number;
  // One trained LoRA of the caller for the chosen model ("" = none) and its weight.
  loraId: string;
  loraWeight: number;
}

function defaultsFor(model: Model | undefined, form: Partial<Form>): Form {
  const l = model?.limits;
  return {
    model: model?.id ?? "",
    task: model?.tasks.includes(form.task ?? Task.TEXT_TO_VIDEO) ? (form.task ?? Task.TEXT_TO_VIDEO) : (model?.tasks[0] ?? Task.TEXT_TO_VIDEO),
    prompt: form.prompt ?? "",
    negativePrompt: form.negativePrompt ?? "",
    imageAssetId: form.imageAssetId ?? "",
    faceSwap: form.faceSwap ?? false,
    faceAssetId: form.faceAssetId ?? "",
    seed: form.seed ?? "",
    width: l?.defaultWidth ?? 0,
    height: l?.defaultHeight ?? 0,
    numFrames: l?.defaultFrames ?? 0,
    steps: l?.defaultSteps ?? 0,
    loraId: form.loraId ?? "",
    loraWeight: form.loraWeight ?? 1,
  };
}

export default function Generate() {
  const location = useLocation();
  // From the assistant (parameters) or the Training page ("Use in Generate": a LoRA and its base model).
  const handed = location.state as { parameters?: GenerationParameters; lora?: string; model?: string } | null;
  const handedModel = handed?.model;
  // Memoised: a new object each render would re-run the loading effect below in a loop.
  const proposed = useMemo(
    () => handed?.parameters ?? (handedModel ? ({ model: handedModel } as GenerationParameters) : undefined),
    [handed?.parameters, handedModel],
  );
  const handedLora = handed?.lora ?? "";
  const [loras, setLoras] = useState<Lora[]>([]);
  const [models, setModels] = useState<Model[]>([]);
  const [form, setForm] = useState<Form>(defaultsFor(undefined, {}));
  const [error, setError] = useState<UiError | null>(null);
  const [assistantReason, setAssistantReason] = useState<string | null>("checking the assistant…");
  const [enhancing, setEnhancing] = useState(false);
  const [jobs, setJobs] = useState<GenerationJob[]>([]);
  const [active, setActive] = useState<GenerationJob | null>(null);
  const [view, setView] = useState<JobView | null>(null);
  const [resultUrl, setResultUrl] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);
  const { assets } = useAssets();
  const images = useMemo(() => assets.filter((a) => kindName(a.kind) === "image"), [assets]);
  const model = models.find((m) => m.id === form.model);

  const loadJobs = useCallback(async () => {
    try {
      setJobs((await generation.listGenerationJobs({ pageSize: 20 })).jobs);
    } catch (err) {
      setError(toUiError(err));
    }
  }, []);

  useEffect(() => {
    generation.listModels({}).then(
      (reply) => {
        setModels(reply.models);
        const first = reply.models.find((m) => m.id === proposed?.model) ?? reply.models[0];
        setForm((f) => ({
          ...defaultsFor(first, { ...f, prompt: proposed?.prompt ?? f.prompt, negativePrompt: proposed?.negativePrompt ?? f.negativePrompt, task: proposed?.task || f.task, loraId: handedLora || f.loraId }),
        }));
      },
      (err) => setError(toUiError(err)),
    );
    assistant.getAssistantStatus({}).then(
      (status) => setAssistantReason(status.available ? null : status.reason || "the assistant is not configured"),
      (err) => setAssistantReason(toUiError(err).message),
    );
    void loadJobs();
    return () => abort.current?.abort();
  }, [loadJobs, proposed, handedLora]);

  // The caller's LoRAs trained on the chosen model (a LoRA of another base model is refused).
  useEffect(() => {
    if (!form.model) return;
    let live = true;
    loraClient.listLoras({ pageSize: 100, baseModel: form.model }).then(
      (reply) => live && setLoras(reply.loras),
      () => live && setLoras([]),
    );
    return () => {
      live = false;
    };
  }, [form.model]);

  function update<K extends keyof Form>(key: K, value: Form[K]) {
    setForm((f) => ({ ...f, [key]: value }));
  }

  function pickModel(id: string) {
    setForm((f) => defaultsFor(models.find((m) => m.id === id), f));
  }

  async function magicPrompt() {
    setEnhancing(true);
    setError(null);
    try {
      const reply = await assistant.enhancePrompt({ idea: form.prompt, family: model?.family });
      setForm((f) => ({ ...f, prompt: reply.prompt, negativePrompt: reply.negativePrompt || f.negativePrompt }));
    } catch (err) {
      setError(toUiError(err));
    } finally {
      setEnhancing(false);
    }
  }

  const watch = useCallback(
    async (job: GenerationJob) => {
      abort.current?.abort();
      const controller = new AbortController();
      abort.current = controller;
      setActive(job);
      setResultUrl(null);
      setView(initialView(job.status));
      let latest = job;
      try {
        const final = await followJob(
          (afterSequence, signal) => generation.watchGenerationJob({ id: job.id, afterSequence }, { signal }),
          (j) => {
            latest = j;
            setActive(j);
          },
          (v) => {
            setView(v);
            // Keep the job list's badge in step with the stream.
            setJobs((js) => js.map((x) => (x.id === job.id && x.status ? { ...x, status: { ...x.status, state: v.state } } : x)));
          },
          controller.signal,
        );
        if (final.state === JobState.SUCCEEDED) {
          const done = (await generation.getGenerationJob({ id: job.id })).job ?? latest;
          setActive(done);
          if (done.result?.videoAssetId) setResultUrl(await downloadUrl(done.result.videoAssetId));
        }
      } catch (err) {
        if (!controller.signal.aborted) setError(toUiError(err));
      } finally {
        if (!controller.signal.aborted) void loadJobs();
      }
    },
    [loadJobs],
  );

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    const seed = form.seed.trim() === "" ? undefined : BigInt(form.seed.trim());
    try {
      const reply = await generation.createGenerationJob({
        requestId: crypto.randomUUID(),
        parameters: {
          model: form.model,
          task: form.task,
          prompt: form.prompt,
          negativePrompt: form.negativePrompt,
          imageAssetId: form.task === Task.IMAGE_TO_VIDEO ? form.imageAssetId : "",
          width: form.width,
          height: form.height,
          numFrames: form.numFrames,
          numInferenceSteps: form.steps,
          seed,
          previewEveryNSteps: 1,
          faceSwap: form.faceSwap ? { sourceFaceAssetId: form.faceAssetId } : undefined,
          loras: form.loraId ? [{ loraId: form.loraId, weight: form.loraWeight }] : [],
        },
      });
      if (reply.job) {
        setJobs((j) => [reply.job!, ...j.filter((x) => x.id !== reply.job!.id)]);
        void watch(reply.job);
      }
    } catch (err) {
      setError(toUiError(err));
    }
  }

  async function cancel() {
    if (!active) return;
    try {
      await generation.cancelGenerationJob({ id: active.id });
    } catch (err) {
      setError(toUiError(err));
    }
  }

  const field = (name: string) => fieldError(error, `parameters.${name}`);
  const running = view !== null && !TERMINAL.has(view.state);
  return (
    <section className="page generate" data-testid="generate-page">
      <form className="card gen-form" onSubmit={submit}>
        <h1>Generate a video</h1>
        <ErrorBanner error={error} onClose={() => setError(null)} />
        <Field label="Model" error={field("model")}>
          <select name="model" value={form.model} onChange={(e) => pickModel(e.target.value)} data-testid="model-select">
            {models.map((m) => (
              <option key={m.id} value={m.id}>
                {m.displayName || m.id}
                {m.tiny ? " (tiny test model)" : ""}
              </option>
            ))}
          </select>
        </Field>
        <div className="row">
          {model?.tasks.map((task) => (
            <label key={task} className="radio">
              <input type="radio" name="task" checked={form.task === task} onChange={() => update("task", task)} data-testid={`task-${task}`} />
              {task === Task.IMAGE_TO_VIDEO ? "Image to video" : "Text to video"}
            </label>
          ))}
        </div>
        <Field label="Prompt" error={field("prompt")}>
          <textarea name="prompt" rows={3} value={form.prompt} onChange={(e) => update("prompt", e.target.value)} />
        </Field>
        <div className="row">
          <button type="button" onClick={() => void magicPrompt()} disabled={assistantReason !== null || enhancing || !form.prompt} title={assistantReason ?? "Expand the idea into a detailed prompt"} data-testid="magic-prompt">
            {enhancing ? "Thinking…" : "Magic Prompt"}
          </button>
          {assistantReason && <span className="muted small">Magic Prompt unavailable: {assistantReason}</span>}
        </div>
        <Field label="Negative prompt" error={field("negative_prompt")}>
          <input name="negativePrompt" value={form.negativePrompt} onChange={(e) => update("negativePrompt", e.target.value)} />
        </Field>
        {form.task === Task.IMAGE_TO_VIDEO && (
          <Field label="Input image" error={field("image_asset_id") ?? (error?.reason === "IMAGE_REQUIRED" ? error.message : undefined)}>
            <select name="imageAssetId" value={form.imageAssetId} onChange={(e) => update("imageAssetId", e.target.value)} data-testid="image-select">
              <option value="">— pick an image —</option>
              {images.map((a) => (
                <option key={a.id} value={a.id}>
                  {a.name}
                </option>
              ))}
            </select>
          </Field>
        )}
        <label className="checkbox">
          <input type="checkbox" checked={form.faceSwap} onChange={(e) => update("faceSwap", e.target.checked)} /> Swap a face into the result
        </label>
        {form.faceSwap && (
          <Field label="Face image" error={field("face_swap")}>
            <select value={form.faceAssetId} onChange={(e) => update("faceAssetId", e.target.value)}>
              <option value="">— pick a face image —</option>
              {images.map((a) => (
                <option key={a.id} value={a.id}>
                  {a.name}
                </option>
              ))}
            </select>
          </Field>
        )}
        <div className="grid4">
          <Field label="Width" error={field("width")}>
            <input type="number" name="width" value={form.width} onChange={(e) => update("width", Number(e.target.value))} />
          </Field>
          <Field label="Height" error={field("height")}>
            <input type="number" name="height" value={form.height} onChange={(e) => update("height", Number(e.target.value))} />
          </Field>
          <Field label="Frames" error={field("num_frames")}>
            <input type="number" name="numFrames" value={form.numFrames} onChange={(e) => update("numFrames", Number(e.target.value))} />
          </Field>
          <Field label="Steps" error={field("num_inference_steps")}>
            <input type="number" name="steps" value={form.steps} onChange={(e) => update("steps", Number(e.target.value))} />
          </Field>
        </div>
        {(loras.length > 0 || form.loraId) && (
          <div className="grid4">
            <Field label="LoRA" error={field("loras")}>
              <select name="lora" value={form.loraId} onChange={(e) => update("loraId", e.target.value)} data-testid="lora-select">
                <option value="">— none —</option>
                {form.loraId && !loras.some((l) => l.id === form.loraId) && <option value={form.loraId}>{form.loraId.slice(0, 8)}</option>}
                {loras.map((l) => (
                  <option key={l.id} value={l.id}>
                    {l.name}
                    {l.triggerWord ? ` (${l.triggerWord})` : ""}
                  </option>
                ))}
              </select>
            </Field>
            <Field label="LoRA weight" error={field("loras[0].weight")}>
              <input type="number" name="loraWeight" step="0.1" min={-4} max={4} value={form.loraWeight} onChange={(e) => update("loraWeight", Number(e.target.value))} />
            </Field>
          </div>
        )}
        <Field label="Seed" error={field("seed")} hint="Empty = random">
          <input name="seed" inputMode="numeric" pattern="[0-9]*" value={form.seed} onChange={(e) => update("seed", e.target.value)} />
        </Field>
        <button type="submit" disabled={!form.model || running} data-testid="generate-button">
          Generate
        </button>
      </form>

      <div className="gen-side">
        {active && view && (
          <div className="card" data-testid="job-panel" data-job-id={active.id} data-state={stateName(view.state)} data-events={view.events}>
            <h2>Current job</h2>
            <ProgressBar fraction={view.state === JobState.SUCCEEDED ? 1 : (view.progress?.fraction ?? 0)} label={describeProgress(view)} testId="gen-progress" />
            <p className="muted small" data-testid="gen-status">
              {describeProgress(view)}
            </p>
            {view.placement && (
              <p className="muted small" data-testid="gen-placement">
                Runs on {describePlacement(view.placement)}
              </p>
            )}
            {view.previewUrl && !resultUrl && <img className="preview" src={view.previewUrl} alt="preview" data-testid="gen-preview" />}
            {resultUrl && <video className="preview" src={resultUrl} controls loop autoPlay muted data-testid="gen-result" />}
            {running && (
              <button className="danger" onClick={() => void cancel()} data-testid="cancel-button">
                Cancel
              </button>
            )}
            {active.result && <p className="small">Seed {active.result.seed.toString()} · {active.result.frameCount} frames · {active.result.device}</p>}
          </div>
        )}
        <div className="card">
          <h2>Jobs</h2>
          <ul className="job-list" data-testid="job-list">
            {jobs.map((job) => (
              <li key={job.id}>
                <button className="link" onClick={() => void watch(job)}>
                  {job.parameters?.prompt.slice(0, 40) || job.parameters?.model}
                </button>
                <span className={`badge ${stateName(job.status?.state ?? JobState.QUEUED)}`}>{stateName(job.status?.state ?? JobState.QUEUED)}</span>
                {job.status?.placement?.executor && (
                  <span className="muted small" title={job.status.placement.node}>
                    {describePlacement(job.status.placement)}
                  </span>
                )}
              </li>
            ))}
          </ul>
        </div>
      </div>
    </section>
  );
}
