import { Code } from "@connectrpc/connect";
import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { kindName, useAssets } from "../api/assets";
import { projects, render } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import { AssetThumb } from "../components/AssetThumb";
import { ClipInspector } from "../components/ClipInspector";
import { KeyframeLanes } from "../components/KeyframeLanes";
import { ErrorBanner } from "../components/common";
import { TimelineView } from "../components/TimelineView";
import { usePlayback } from "../components/usePlayback";
import type { ProposedAction } from "../gen/viarte/inference/v1/assistant_pb";
import type { ProposeEditRequest } from "../gen/viarte/render/v1/render_pb";
import type { Asset } from "../gen/viarte/storage/v1/storage_pb";
import { applyProposal, autoEditRequest, beatsOnTimeline, musicClip, snapToBeats } from "../timeline/effects";
import {
  addClip,
  addTrack,
  clipFromProto,
  commit,
  findClip,
  firstFreeStart,
  fromProto,
  history,
  makeClip,
  redo,
  removeClip,
  setTransition,
  splitClip,
  timelineDuration,
  TimelineError,
  toProto,
  pasteClip,
  rippleDelete,
  undo,
  acceptsClip,
  type AssetFacts,
  type Clip,
  type ClipType,
  type History,
  type Timeline,
} from "../timeline/model";

const AssistantPanel = lazy(() => import("../components/AssistantPanel"));

type SaveState = "saved" | "pending" | "saving" | "conflict" | "error";

export function assetFacts(asset: Asset): AssetFacts {
  const kind = kindName(asset.kind);
  return { name: asset.name, type: kind === "other" ? "image" : kind, duration: asset.media?.durationSeconds ?? 0 };
}

const SHORTCUTS: [string, string][] = [
  ["Space", "Play / pause"],
  ["J / K / L", "Back 1 s / pause / play faster"],
  ["Home / End", "Go to start / end"],
  ["I / O", "Loop in / out at the playhead"],
  ["S", "Split the selected clip at the playhead"],
  ["Delete", "Delete the selected clip"],
  ["Shift+Delete", "Ripple delete (close the gap)"],
  ["Ctrl+C / Ctrl+V", "Copy the selected clip / paste it at the playhead"],
  ["Ctrl+Z / Ctrl+Shift+Z", "Undo / redo"],
  ["Drag a clip / its edges", "Move (across tracks) / trim, snapping to clip edges and the playhead"],
  ["?", "Show / hide this list"],
];

export default function Editor() {
  const { projectId = "" } = useParams();
  const navigate = useNavigate();
  const { assets, error: assetsError, reload: reloadAssets } = useAssets();
  const facts = useMemo(() => new Map(assets.map((a) => [a.id, assetFacts(a)])), [assets]);
  const [title, setTitle] = useState("");
  const [hist, setHist] = useState<History<Timeline> | null>(null);
  const [error, setError] = useState<UiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [saveState, setSaveState] = useState<SaveState>("saved");
  const [selected, setSelected] = useState<string | null>(null);
  const [playhead, setPlayhead] = useState(0);
  const [pxPerSecond, setPxPerSecond] = useState(80);
  const [snapping, setSnapping] = useState(true);
  const [frame, setFrame] = useState<{ url: string | null; message: string }>({ url: null, message: "" });
  const [showAssistant, setShowAssistant] = useState(false);
  const [showHelp, setShowHelp] = useState(false);
  const clipboard = useRef<{ clip: Clip; trackId: string } | null>(null);
  const [proposing, setProposing] = useState(false);
  const etag = useRef("");
  const saved = useRef<Timeline | null>(null);
  const saving = useRef<Promise<void> | null>(null);
  const timeline = hist?.present ?? null;
  const playback = usePlayback(timeline, playhead, setPlayhead);

  // ---- load ------------------------------------------------------------------------------------
  useEffect(() => {
    projects.getProject({ id: projectId }).then(
      (reply) => {
        const p = reply.project!;
        etag.current = p.etag;
        setTitle(p.title);
        const loaded = fromProto(p.timeline!, new Map());
        saved.current = loaded;
        setHist(history(loaded));
      },
      (err) => setError(toUiError(err)),
    );
  }, [projectId]);

  // Asset facts arrive after the project: fill in media lengths and names once they do.
  useEffect(() => {
    if (!timeline || facts.size === 0) return;
    const needs = timeline.tracks.some((t) =>
      t.clips.some((c) => {
        const f = facts.get(c.assetId);
        return f !== undefined && (f.name !== c.name || (f.duration > 0 && c.mediaDuration !== f.duration));
      }),
    );
    if (!needs) return;
    const refreshed = fromProto(toProto(timeline), facts);
    saved.current = saved.current === timeline ? refreshed : saved.current;
    setHist((h) => (h ? { ...h, present: refreshed } : h));
  }, [facts, timeline]);

  // ---- edits -----------------------------------------------------------------------------------
  const apply = useCallback((op: (tl: Timeline) => Timeline) => {
    setHist((h) => {
      if (!h) return h;
      try {
        setNotice(null);
        return commit(h, op(h.present));
      } catch (err) {
        if (err instanceof TimelineError) {
          setNotice(err.message);
          return h;
        }
        throw err;
      }
    });
  }, []);

  // ---- autosave with the project's etag ----------------------------------------------------------
  const save = useCallback(
    async (tl: Timeline): Promise<void> => {
      if (saving.current) await saving.current;
      if (tl === saved.current) return;
      setSaveState("saving");
      const attempt = (async () => {
        try {
          const reply = await projects.updateProject({
            project: { id: projectId, title, timeline: toProto(tl), etag: etag.current },
            updateMask: { paths: ["timeline"] },
          });
          etag.current = reply.project?.etag ?? etag.current;
          saved.current = tl;
          setSaveState("saved");
        } catch (err) {
          const ui = toUiError(err);
          setError(ui);
          setSaveState(ui.code === Code.Aborted ? "conflict" : "error");
        }
      })();
      saving.current = attempt;
      await attempt;
      saving.current = null;
    },
    [projectId, title],
  );

  useEffect(() => {
    if (!timeline || timeline === saved.current || saveState === "conflict") return;
    setSaveState("pending");
    const timer = window.setTimeout(() => void save(timeline), 600);
    return () => window.clearTimeout(timer);
  }, [timeline, save, saveState]);

  async function reloadProject() {
    setError(null);
    const reply = await projects.getProject({ id: projectId });
    etag.current = reply.project!.etag;
    const loaded = fromProto(reply.project!.timeline!, facts);
    saved.current = loaded;
    setHist(history(loaded));
    setSaveState("saved");
  }

  async function goExport() {
    if (timeline && timeline !== saved.current) await save(timeline);
    if (saved.current === timeline) navigate(`/projects/${projectId}/export`);
  }

  // ---- frame preview at the playhead (RenderService.RenderFrame) ---------------------------------
  useEffect(() => {
    if (!timeline || playback.playing) return; // the video shows the frames while playing
    const duration = timelineDuration(timeline);
    if (duration === 0) {
      setFrame({ url: null, message: "Add clips to see a preview" });
      return;
    }
    const controller = new AbortController();
    const timer = window.setTimeout(async () => {
      try {
        const reply = await render.renderFrame(
          { timeline: toProto(timeline), timeSeconds: Math.min(playhead, Math.max(0, duration - 0.01)), maxWidth: 480 },
          { signal: controller.signal },
        );
        const url = URL.createObjectURL(new Blob([reply.jpeg as Uint8Array<ArrayBuffer>], { type: "image/jpeg" }));
        setFrame((f) => {
          if (f.url) URL.revokeObjectURL(f.url);
          return { url, message: "" };
        });
      } catch (err) {
        if (!controller.signal.aborted) setFrame((f) => ({ ...f, message: toUiError(err).message }));
      }
    }, 200);
    return () => {
      controller.abort();
      window.clearTimeout(timer);
    };
  }, [timeline, playhead, playback.playing]);

  // ---- keyboard shortcuts --------------------------------------------------------------------------
  useEffect(() => {
    function onKey(event: KeyboardEvent) {
      const target = event.target as HTMLElement;
      if (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
      const mod = event.ctrlKey || event.metaKey;
      const key = event.key.toLowerCase();
      if (event.key === " " && !mod) {
        event.preventDefault(); // not a click on the focused button, not a page scroll
        playback.toggle();
      } else if (!mod && (key === "j" || key === "k" || key === "l")) {
        playback.shuttle(key);
      } else if (!mod && (event.key === "Home" || event.key === "End")) {
        event.preventDefault();
        playback.seek(event.key === "Home" ? 0 : Math.max(0, (timeline ? timelineDuration(timeline) : 0) - 0.01));
      } else if (!mod && key === "i") {
        playback.setLoopIn(playhead);
      } else if (!mod && key === "o") {
        playback.setLoopOut(playhead);
      } else if (mod && event.key.toLowerCase() === "z") {
        event.preventDefault();
        setHist((h) => (h ? (event.shiftKey ? redo(h) : undo(h)) : h));
      } else if (mod && event.key.toLowerCase() === "y") {
        event.preventDefault();
        setHist((h) => (h ? redo(h) : h));
      } else if (mod && key === "c" && selected) {
        const found = timeline ? findClip(timeline, selected) : null;
        if (found) clipboard.current = { clip: found.clip, trackId: found.track.id };
      } else if (mod && key === "v" && clipboard.current) {
        event.preventDefault();
        const { clip, trackId } = clipboard.current;
        apply((tl) => pasteClip(tl, trackId, clip, playhead));
      } else if (event.key === "?") {
        setShowHelp((s) => !s);
      } else if (event.key === "Escape") {
        setShowHelp(false);
      } else if ((event.key === "Delete" || event.key === "Backspace") && event.shiftKey && selected) {
        apply((tl) => rippleDelete(tl, selected));
        setSelected(null);
      } else if (event.key === "s" && selected) {
        apply((tl) => splitClip(tl, selected, playhead));
      } else if ((event.key === "Delete" || event.key === "Backspace") && selected) {
        apply((tl) => removeClip(tl, selected));
        setSelected(null);
      }
    }
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [apply, selected, playhead, playback, timeline]);

  // ---- library → timeline ------------------------------------------------------------------------
  function clipForAsset(asset: Asset, start: number) {
    const f = assetFacts(asset);
    return makeClip({ type: f.type as ClipType, assetId: asset.id, name: asset.name, start, mediaDuration: f.type === "image" ? 0 : f.duration, duration: f.type === "image" ? 3 : f.duration || 3 });
  }

  function placeAsset(assetId: string, trackId: string | null, at: number) {
    const asset = assets.find((a) => a.id === assetId);
    if (!asset || !timeline) return;
    apply((tl) => {
      const probe = clipForAsset(asset, 0);
      const track = tl.tracks.find((t) => t.id === trackId) ?? tl.tracks.find((t) => acceptsClip(t, probe.type));
      if (!track) throw new TimelineError("no track accepts this asset");
      if (!acceptsClip(track, probe.type)) throw new TimelineError(`a ${probe.type} clip cannot go on ${track.name}`);
      const clip = { ...probe, start: firstFreeStart(track, at, probe.duration) };
      setSelected(clip.id);
      return addClip(tl, track.id, clip);
    });
  }

  function addText() {
    apply((tl) => {
      const track = tl.tracks.find((t) => t.type === "text") ?? null;
      const next = track ? tl : addTrack(tl, "text");
      const textTrack = next.tracks.find((t) => t.type === "text")!;
      const clip = makeClip({ type: "text", text: "Title", name: "Title", start: firstFreeStart(textTrack, playhead, 3), duration: 3 });
      setSelected(clip.id);
      return addClip(next, textTrack.id, clip);
    });
  }

  // ---- smart edit: render's ProposeEdit, applied as one undoable change --------------------------
  async function propose(request: () => ProposeEditRequest) {
    let asked: ProposeEditRequest;
    try {
      asked = request();
    } catch (err) {
      if (err instanceof TimelineError) return setNotice(err.message);
      throw err;
    }
    setProposing(true);
    setNotice("Cutting the clips to the music…");
    try {
      const reply = await render.proposeEdit(asked);
      const cuts = reply.cutSeconds.length;
      const done = `Auto-edit: ${cuts} cut${cuts === 1 ? "" : "s"} on the beat (Undo brings your timeline back).`;
      // As `apply`, with the notice set inside the update (apply's own clearing runs there too).
      setHist((h) => {
        if (!h) return h;
        try {
          const next = commit(h, applyProposal(h.present, reply.timeline!, facts));
          setNotice(done);
          return next;
        } catch (err) {
          if (!(err instanceof TimelineError)) throw err;
          setNotice(err.message);
          return h;
        }
      });
    } catch (err) {
      setNotice(null);
      setError(toUiError(err));
    } finally {
      setProposing(false);
    }
  }

  // "Snap to beats": the music's beats from render's AnalyzeMedia (cached per asset), then the
  // user's cuts moved onto them as one undoable change.
  async function snapCutsToBeats() {
    if (!timeline) return;
    let music: Clip;
    try {
      music = musicClip(timeline);
    } catch (err) {
      if (err instanceof TimelineError) return setNotice(err.message);
      throw err;
    }
    setProposing(true);
    setNotice("Finding the music's beats…");
    try {
      const reply = await render.analyzeMedia({ assetId: music.assetId });
      const beats = beatsOnTimeline(music, reply.analysis?.beatSeconds ?? []);
      setHist((h) => {
        if (!h) return h;
        try {
          const { timeline: next, moved } = snapToBeats(h.present, beats);
          setNotice(`Snap to beats: ${moved} cut${moved === 1 ? "" : "s"} moved onto the beat.`);
          return moved ? commit(h, next) : h;
        } catch (err) {
          if (!(err instanceof TimelineError)) throw err;
          setNotice(err.message);
          return h;
        }
      });
    } catch (err) {
      setNotice(null);
      setError(toUiError(err));
    } finally {
      setProposing(false);
    }
  }

  // ---- assistant actions, applied only after the user confirms in the panel ---------------------
  function applyAction(action: ProposedAction) {
    const a = action.action;
    if (a.case === "startGeneration") {
      navigate("/generate", { state: { parameters: a.value } });
      return;
    }
    if (a.case === "proposeEdit" && a.value.request) {
      const request = a.value.request;
      void propose(() => request);
      return;
    }
    apply((tl) => {
      if (a.case === "addClip" || a.case === "addText") {
        const track = tl.tracks[a.value.trackIndex];
        if (!track || !a.value.clip) throw new TimelineError("the assistant named a track that does not exist");
        return addClip(tl, track.id, clipFromProto(a.value.clip, track.type, facts));
      }
      if (a.case === "applyTransition" && a.value.transition) {
        const t = a.value.transition;
        return setTransition(tl, a.value.clipId, { kind: t.kind, duration: t.durationSeconds, ...(t.name ? { name: t.name } : {}), ...(t.easing ? { easing: t.easing } : {}) });
      }
      throw new TimelineError("unknown assistant action");
    });
  }

  if (!hist || !timeline) {
    return (
      <section className="page">
        <ErrorBanner error={error} />
        {!error && <p>Loading project…</p>}
      </section>
    );
  }

  const selection = selected ? (() => {
    try {
      return findClip(timeline, selected);
    } catch {
      return null;
    }
  })() : null;

  const saveLabel = { saved: "All changes saved", pending: "Unsaved changes", saving: "Saving…", conflict: "Not saved: conflict", error: "Not saved" }[saveState];
  return (
    <section className="editor" data-testid="editor-page">
      <div className="editor-bar">
        <Link to="/projects">← Projects</Link>
        <h1 className="title">{title}</h1>
        <span className={`save-state ${saveState}`} data-testid="save-state" data-state={saveState}>
          {saveLabel}
        </span>
        <span className="spacer" />
        <button onClick={() => setHist(undo(hist))} disabled={hist.past.length === 0} data-testid="undo" title="Undo (Ctrl+Z)">↶ Undo</button>
        <button onClick={() => setHist(redo(hist))} disabled={hist.future.length === 0} data-testid="redo" title="Redo (Ctrl+Shift+Z)">↷ Redo</button>
        <button onClick={() => selected && apply((tl) => splitClip(tl, selected, playhead))} disabled={!selected} data-testid="split" title="Split at playhead (S)">✂ Split</button>
        <button onClick={addText} data-testid="add-text">T Add text</button>
        <button onClick={() => void propose(() => autoEditRequest(timeline))} disabled={proposing} data-testid="auto-edit" title="Cut the video clips to the first audio clip's beats">♫ Auto-edit to music</button>
        <button onClick={() => void snapCutsToBeats()} disabled={proposing} data-testid="snap-to-beats" title="Move the cuts between video clips onto the music's nearest beats">♩ Snap to beats</button>
        <button onClick={() => apply((tl) => addTrack(tl, "video"))}>+ Video track</button>
        <button onClick={() => apply((tl) => addTrack(tl, "audio"))}>+ Audio track</button>
        <label className="checkbox">
          <input type="checkbox" checked={snapping} onChange={(e) => setSnapping(e.target.checked)} data-testid="snap-toggle" /> Snap
        </label>
        <button onClick={() => setPxPerSecond((z) => Math.max(10, z / 1.5))} data-testid="zoom-out" title="Zoom out">−</button>
        <button onClick={() => setPxPerSecond((z) => Math.min(800, z * 1.5))} data-testid="zoom-in" title="Zoom in">+</button>
        <button onClick={() => setShowAssistant((s) => !s)} data-testid="assistant-toggle">Assistant</button>
        <button onClick={() => setShowHelp((s) => !s)} data-testid="shortcuts-toggle" title="Keyboard shortcuts (?)" aria-label="Keyboard shortcuts">?</button>
        <button className="primary" onClick={() => void goExport()} data-testid="export-link">Export…</button>
      </div>
      <ErrorBanner error={error ?? assetsError ?? playback.error} onClose={() => setError(null)} />
      {saveState === "conflict" && (
        <div className="error-banner" data-testid="conflict-banner">
          Someone else saved this project.
          <button onClick={() => void reloadProject()}>Reload the latest version</button>
        </div>
      )}
      {notice && <div className="notice" data-testid="notice">{notice}</div>}
      <div className="editor-main">
        <aside className="library" data-testid="library">
          <h2 className="panel-title">Library</h2>
          {assets.map((asset) => (
            <div
              key={asset.id}
              className="library-item"
              draggable
              data-testid="library-item"
              data-asset-id={asset.id}
              data-kind={kindName(asset.kind)}
              onDragStart={(e) => {
                e.dataTransfer.setData("application/x-viarte-asset", asset.id);
                e.dataTransfer.effectAllowed = "copy";
              }}
            >
              <AssetThumb asset={asset} />
              <span className="name" title={asset.name}>{asset.name}</span>
              <button className="link small" onClick={() => placeAsset(asset.id, null, playhead)} title="Add at the playhead">+ Add</button>
            </div>
          ))}
        </aside>
        <div className="viewer">
          <div className="frame" style={{ aspectRatio: `${timeline.canvas.width} / ${timeline.canvas.height}` }}>
            <video ref={playback.videoRef} data-testid="player" data-warm={playback.warm.state} playsInline hidden={!playback.playing} aria-label="timeline playback" />
            {frame.url && !playback.playing ? <img src={frame.url} alt="frame at the playhead" data-testid="frame-preview" /> : null}
            {frame.message && !playback.playing && <span className="frame-message">{frame.message}</span>}
          </div>
          <div className="transport">
            <button onClick={() => playback.shuttle("j")} title="Back 1 s (J)" aria-label="Back one second">⏪</button>
            <button onClick={playback.toggle} data-testid="play" data-playing={playback.playing} title="Play/Pause (Space)" aria-label={playback.playing ? "Pause" : "Play"}>
              {playback.playing ? "⏸" : "▶"}
            </button>
            <button onClick={() => playback.shuttle("l")} title="Play, faster on each press (L)" aria-label="Play faster">⏩</button>
            {playback.rate !== 1 && <span className="muted small">{playback.rate}x</span>}
            <label className="checkbox small">
              <input type="checkbox" checked={playback.looping} onChange={(e) => playback.setLooping(e.target.checked)} data-testid="loop-toggle" /> Loop
            </label>
            <button className="link small" onClick={() => playback.setLoopIn(playhead)} title="Loop in at the playhead (I)">In</button>
            <button className="link small" onClick={() => playback.setLoopOut(playhead)} title="Loop out at the playhead (O)">Out</button>
            {playback.loop && <span className="muted small" data-testid="loop-range">{playback.loop.start.toFixed(1)}–{playback.loop.end.toFixed(1)} s</span>}
          </div>
          <div className="muted small">
            <span data-testid="playhead-time" data-seconds={playhead}>{playhead.toFixed(2)} s</span> / {timelineDuration(timeline).toFixed(2)} s · {timeline.canvas.width}×{timeline.canvas.height} @ {timeline.canvas.fps} fps
          </div>
        </div>
        <aside className="inspector" data-testid="inspector">
          <h2 className="panel-title">Inspector</h2>
          {!selection && <p className="muted small">Select a clip.</p>}
          {selection && (
            <ClipInspector
              timeline={timeline}
              track={selection.track}
              clip={selection.clip}
              assets={assets}
              apply={apply}
              onDelete={() => { apply((tl) => removeClip(tl, selection.clip.id)); setSelected(null); }}
              onUploaded={() => void reloadAssets()}
              onError={setError}
            />
          )}
        </aside>
      </div>
      <TimelineView
        timeline={timeline}
        playhead={playhead}
        pxPerSecond={pxPerSecond}
        snapping={snapping}
        selected={selected}
        onSelect={setSelected}
        onSeek={playback.seek}
        onCommit={(next) => setHist((h) => (h ? commit(h, next) : h))}
        onApply={apply}
        onDropAsset={placeAsset}
      />
      {selection && <KeyframeLanes key={selection.clip.id} timeline={timeline} clip={selection.clip} playhead={playhead} pxPerSecond={pxPerSecond} apply={apply} />}
      {showHelp && (
        <div className="help-overlay" role="dialog" aria-label="Keyboard shortcuts" data-testid="shortcuts">
          <h2 className="panel-title">Keyboard shortcuts</h2>
          <dl>
            {SHORTCUTS.map(([keys, what]) => (
              <div key={keys}><dt>{keys}</dt><dd>{what}</dd></div>
            ))}
          </dl>
          <button onClick={() => setShowHelp(false)}>Close</button>
        </div>
      )}
      {showAssistant && (
        <Suspense fallback={<div className="assistant">Loading assistant…</div>}>
          <AssistantPanel projectId={projectId} title={title} timeline={timeline} assets={assets} onApply={applyAction} onClose={() => setShowAssistant(false)} />
        </Suspense>
      )}
    </section>
  );
}
