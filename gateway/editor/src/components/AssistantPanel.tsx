import { useEffect, useRef, useState, type FormEvent } from "react";
import { assistant } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import { ChatRole, type ProposedAction } from "../gen/viarte/inference/v1/assistant_pb";
import type { Asset } from "../gen/viarte/storage/v1/storage_pb";
import { toProto, type Timeline } from "../timeline/model";
import { ErrorBanner } from "./common";

interface Props {
  projectId: string;
  title: string;
  timeline: Timeline;
  assets: Asset[];
  onApply(action: ProposedAction): void;
  onClose(): void;
}

interface Turn {
  role: ChatRole;
  content: string;
}

// The assistant streams its answer token by token; the actions it proposes are only applied when
// the user presses Apply on each one.
export default function AssistantPanel(props: Props) {
  const [turns, setTurns] = useState<Turn[]>([]);
  const [input, setInput] = useState("");
  const [actions, setActions] = useState<ProposedAction[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<UiError | null>(null);
  const [unavailable, setUnavailable] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);

  useEffect(() => {
    assistant.getAssistantStatus({}).then(
      (s) => setUnavailable(s.available ? null : s.reason || "the assistant is not configured"),
      (err) => setUnavailable(toUiError(err).message),
    );
    return () => abort.current?.abort();
  }, []);

  async function send(event: FormEvent) {
    event.preventDefault();
    if (!input.trim()) return;
    const history: Turn[] = [...turns, { role: ChatRole.USER, content: input.trim() }];
    setTurns([...history, { role: ChatRole.ASSISTANT, content: "" }]);
    setInput("");
    setBusy(true);
    setError(null);
    const controller = new AbortController();
    abort.current = controller;
    try {
      const messages = history.map((t) => ({ role: t.role, content: t.content }));
      const stream = assistant.chat(
        {
          messages,
          project: {
            projectId: props.projectId,
            title: props.title,
            timeline: toProto(props.timeline),
            assetNames: Object.fromEntries(props.assets.map((a) => [a.id, a.name])),
          },
        },
        { signal: controller.signal },
      );
      for await (const reply of stream) {
        if (reply.payload.case === "delta") {
          const delta = reply.payload.value;
          setTurns((ts) => ts.map((t, i) => (i === ts.length - 1 ? { ...t, content: t.content + delta } : t)));
        } else if (reply.payload.case === "action") {
          const action = reply.payload.value;
          setActions((as) => [...as, action]);
        }
      }
    } catch (err) {
      if (!controller.signal.aborted) setError(toUiError(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <aside className="assistant" data-testid="assistant-panel">
      <div className="row">
        <h2 className="panel-title">Assistant</h2>
        <span className="spacer" />
        <button className="link" onClick={props.onClose}>×</button>
      </div>
      {unavailable && <p className="muted small">Unavailable: {unavailable}</p>}
      <ErrorBanner error={error} onClose={() => setError(null)} />
      <div className="chat">
        {turns.map((t, i) => (
          <div key={i} className={`bubble ${t.role === ChatRole.USER ? "user" : "bot"}`}>
            {t.content || (busy && i === turns.length - 1 ? "…" : "")}
          </div>
        ))}
      </div>
      {actions.map((action) => (
        <div key={action.id} className="action-card" data-testid="proposed-action">
          <span>{action.summary}</span>
          <button
            onClick={() => {
              props.onApply(action);
              setActions((as) => as.filter((a) => a.id !== action.id));
            }}
          >
            Apply
          </button>
          <button className="link" onClick={() => setActions((as) => as.filter((a) => a.id !== action.id))}>
            Dismiss
          </button>
        </div>
      ))}
      <form onSubmit={send} className="row">
        <input value={input} onChange={(e) => setInput(e.target.value)} placeholder="Ask for an edit…" disabled={unavailable !== null || busy} />
        <button type="submit" disabled={unavailable !== null || busy}>Send</button>
      </form>
    </aside>
  );
}
