import type { ReactNode } from "react";
import type { UiError } from "../api/errors";

export function ErrorBanner({ error, onClose }: { error: UiError | null; onClose?: () => void }) {
  if (!error) return null;
  return (
    <div className="error-banner" role="alert" data-testid="error-banner" data-reason={error.reason}>
      <span>{error.message}</span>
      {error.reason && <code className="reason">{error.reason}</code>}
      {error.retryAfterSeconds != null && <span> (retry in {Math.ceil(error.retryAfterSeconds)} s)</span>}
      {onClose && (
        <button className="link" onClick={onClose} aria-label="Dismiss">
          ×
        </button>
      )}
    </div>
  );
}

export function Field(props: { label: string; error?: string; children: ReactNode; hint?: string }) {
  return (
    <label className={`field${props.error ? " invalid" : ""}`}>
      <span className="label">{props.label}</span>
      {props.children}
      {props.hint && !props.error && <span className="hint">{props.hint}</span>}
      {props.error && (
        <span className="violation" role="alert">
          {props.error}
        </span>
      )}
    </label>
  );
}

export function ProgressBar({ fraction, label, testId }: { fraction: number; label?: string; testId?: string }) {
  const percent = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
  return (
    <div className="progress" data-testid={testId} data-percent={percent} role="progressbar" aria-valuenow={percent} aria-valuemin={0} aria-valuemax={100}>
      <div className="progress-fill" style={{ width: `${percent}%` }} />
      <span className="progress-label">{label ?? `${percent}%`}</span>
    </div>
  );
}
