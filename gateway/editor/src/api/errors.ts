// Errors from grpc-status-details-bin, turned into what a person can act on. The editor branches
// on ErrorInfo reasons (never on message strings); BadRequest field violations go next to fields.
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb";

export interface UiError {
  code: Code;
  reason: string;
  message: string;
  // proto field path → description ("parameters.prompt" → "must not be empty").
  fields: Record<string, string>;
  retryAfterSeconds: number | null;
}

const REASON_MESSAGES: Record<string, string> = {
  INVALID_CREDENTIALS: "Wrong email or password.",
  EMAIL_TAKEN: "An account with this email already exists.",
  WEAK_PASSWORD: "Choose a longer password (at least 8 characters).",
  INVALID_EMAIL: "That does not look like an email address.",
  TOO_MANY_ATTEMPTS: "Too many attempts. Wait a moment and try again.",
  TOKEN_EXPIRED: "Your session expired. Please sign in again.",
  TOKEN_REVOKED: "Your session ended. Please sign in again.",
  REFRESH_TOKEN_REUSED: "Your session ended. Please sign in again.",
  ETAG_MISMATCH: "This project was saved somewhere else in the meantime. Reload it to see the latest version; your last change was not saved.",
  PROJECT_NOT_FOUND: "This project does not exist (any more).",
  ASSET_NOT_FOUND: "A media file used here no longer exists.",
  QUEUE_FULL: "The studio is busy. Try again shortly.",
  ASSISTANT_NOT_CONFIGURED: "The assistant is not configured on this server.",
  UPSTREAM_RATE_LIMITED: "The assistant is rate limited. Try again shortly.",
  RATE_LIMITED: "Slow down a little and try again.",
  QUOTA_BYTES_EXCEEDED: "Your storage quota is full. Delete some assets first.",
  QUOTA_COUNT_EXCEEDED: "You have too many assets. Delete some first.",
  OBJECT_TOO_LARGE: "This file is too large.",
  UNSUPPORTED_MEDIA_TYPE: "This file type is not supported.",
  MODEL_NOT_FOUND: "This model is not available.",
  IMAGE_REQUIRED: "Pick an input image for image-to-video.",
  INVALID_TIMELINE: "The timeline has a problem.",
  INVALID_PARAMETERS: "Some settings are not valid: see the highlighted fields.",
  TIMELINE_TOO_LONG: "The timeline is too long to render.",
  CANVAS_TOO_LARGE: "The output size is too large.",
  NO_FACE_IN_SOURCE: "No face was found in the source face image.",
  QUOTA_EXCEEDED: "This would go over your monthly credit budget.",
  MISSING_SCOPE: "This API key lacks the scope for that.",
  API_KEY_NOT_FOUND: "That API key does not exist (any more).",
  INVALID_WEBHOOK_URL: "That webhook URL cannot be used: see the URL field.",
  WEBHOOK_NOT_FOUND: "That webhook endpoint does not exist (any more).",
  DELIVERY_NOT_FOUND: "That delivery does not exist (any more).",
  WEBHOOK_DISABLED: "The endpoint is disabled: enable it first.",
  TOO_MANY_WEBHOOKS: "You have as many webhook endpoints as allowed. Delete one first.",
  INVALID_PERIOD: "The period ends before it starts.",
  INVALID_DATASET: "The dataset has a problem: see the highlighted examples.",
  LORA_UNSUPPORTED: "This model cannot use or train LoRAs.",
  LORA_NOT_FOUND: "That LoRA does not exist (any more).",
};

const CODE_MESSAGES: Partial<Record<Code, string>> = {
  [Code.Unavailable]: "The studio cannot be reached right now. Check your connection and retry.",
  [Code.Unauthenticated]: "Please sign in again.",
  [Code.PermissionDenied]: "You are not allowed to do that.",
  [Code.DeadlineExceeded]: "That took too long. Try again.",
  [Code.ResourceExhausted]: "Too many requests. Try again shortly.",
  [Code.Unimplemented]: "This server does not offer that feature.",
};

export function toUiError(error: unknown): UiError {
  const err = ConnectError.from(error);
  const info = err.findDetails(ErrorInfoSchema)[0];
  const fields: Record<string, string> = {};
  for (const bad of err.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) fields[v.field] = v.description;
  }
  const retry = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  const reason = info?.reason ?? "";
  const message = REASON_MESSAGES[reason] ?? (err.rawMessage || CODE_MESSAGES[err.code] || "Something went wrong.");
  return {
    code: err.code,
    reason,
    message,
    fields,
    retryAfterSeconds: retry ? Number(retry.seconds) + retry.nanos / 1e9 : null,
  };
}

// Violations for one form field: exact path or any path below it ("parameters.width").
export function fieldError(error: UiError | null, ...paths: string[]): string | undefined {
  if (!error) return undefined;
  for (const [field, description] of Object.entries(error.fields)) {
    if (paths.some((p) => field === p || field.startsWith(`${p}.`) || field.startsWith(`${p}[`))) return description;
  }
  return undefined;
}
