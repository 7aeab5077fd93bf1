// Webhook endpoints: add (the whsec_ secret shown once), list, rotate the secret, delete, enable
// again after a 410 disabled it, "Send test" (SendTestWebhook: a signed webhook.test event, logged
// as one more delivery, so a receiver can be checked before any job ends), and each endpoint's
// delivery log (attempts, status codes, next retry) with "send again" (RedeliverWebhook).
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { webhooks } from "../api/client";
import { fieldError, toUiError, type UiError } from "../api/errors";
import { ErrorBanner, Field } from "../components/common";
import { DeliveryState, type WebhookDelivery, type WebhookEndpoint } from "../gen/viarte/account/v1/account_pb";
import { formatTime } from "./format";

const EVENT_TYPES = ["job.succeeded", "job.failed", "job.cancelled"];

function deliveryStateName(state: DeliveryState): string {
  return DeliveryState[state]?.toLowerCase() ?? "unknown";
}

function Deliveries({ endpoint, onError, version }: { endpoint: WebhookEndpoint; onError: (e: UiError) => void; version: number }) {
  const [deliveries, setDeliveries] = useState<WebhookDelivery[] | null>(null);
  const load = useCallback(async () => {
    try {
      setDeliveries((await webhooks.listWebhookDeliveries({ endpointId: endpoint.id, pageSize: 20 })).deliveries);
    } catch (err) {
      onError(toUiError(err));
    }
  }, [endpoint.id, onError]);
  // `version` changes when a test event was queued for this endpoint: load the log again.
  useEffect(() => void load(), [load, version]);
  // A pending delivery (a retry waiting, or one sent again) is attempted by the account service's
  // dispatcher in the background: follow it until it settles.
  const pending = deliveries?.some((d) => d.state === DeliveryState.PENDING) ?? false;
  useEffect(() => {
    if (!pending) return;
    const timer = window.setInterval(() => void load(), 2000);
    return () => window.clearInterval(timer);
  }, [pending, load]);

  async function redeliver(delivery: WebhookDelivery) {
    try {
      const reply = await webhooks.redeliverWebhook({ deliveryId: delivery.id });
      setDeliveries((ds) => ds && ds.map((d) => (d.id === delivery.id && reply.delivery ? reply.delivery : d)));
    } catch (err) {
      onError(toUiError(err));
    }
  }

  if (deliveries === null) return <p className="muted small">Loading deliveries…</p>;
  return (
    <div className="deliveries" data-testid="delivery-log" data-endpoint-id={endpoint.id}>
      <div className="row">
        <h4>Deliveries</h4>
        <button className="link" onClick={() => void load()} aria-label={`Refresh the deliveries of ${endpoint.url}`}>
          Refresh
        </button>
      </div>
      {deliveries.length === 0 && <p className="muted small">No deliveries yet: one is sent when one of your jobs ends.</p>}
      <ul className="delivery-list">
        {deliveries.map((d) => (
          <li key={d.id} data-testid="delivery" data-delivery-id={d.id} data-event-type={d.eventType} data-state={deliveryStateName(d.state)} data-status={d.lastStatusCode} data-attempts={d.attemptCount}>
            <div className="row">
              <span className={`badge ${deliveryStateName(d.state)}`}>{deliveryStateName(d.state)}</span>
              <strong>{d.eventType}</strong>
              {d.jobId && <code className="small">job {d.jobId.slice(0, 8)}</code>}
              <span className="small muted">
                {d.attemptCount} attempt{d.attemptCount === 1 ? "" : "s"}
                {d.lastStatusCode ? ` · HTTP ${d.lastStatusCode}` : ""}
                {d.state === DeliveryState.PENDING && d.nextAttemptTime ? ` · next ${formatTime(d.nextAttemptTime)}` : ""}
              </span>
              <span className="spacer" />
              <button className="link" onClick={() => void redeliver(d)} disabled={endpoint.disabled} data-testid="redeliver">
                Send again
              </button>
            </div>
            {d.attempts.length > 0 && (
              <ol className="attempts small muted">
                {d.attempts.map((a) => (
                  <li key={a.attempt}>
                    {formatTime(a.time)} · {a.statusCode ? `HTTP ${a.statusCode}` : a.error || "no answer"} · {a.durationMs.toString()} ms
                  </li>
                ))}
              </ol>
            )}
          </li>
        ))}
      </ul>
    </div>
  );
}

export function Webhooks() {
  const [endpoints, setEndpoints] = useState<WebhookEndpoint[]>([]);
  const [error, setError] = useState<UiError | null>(null);
  const [url, setUrl] = useState("");
  const [types, setTypes] = useState<string[]>([]);
  const [secret, setSecret] = useState<{ url: string; value: string } | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [tested, setTested] = useState(0);

  const load = useCallback(async () => {
    try {
      setEndpoints((await webhooks.listWebhookEndpoints({ pageSize: 50 })).endpoints);
    } catch (err) {
      setError(toUiError(err));
    }
  }, []);
  useEffect(() => void load(), [load]);

  async function act(fn: () => Promise<void>) {
    setError(null);
    try {
      await fn();
      await load();
    } catch (err) {
      setError(toUiError(err));
    }
  }

  function add(event: FormEvent) {
    event.preventDefault();
    void act(async () => {
      const reply = await webhooks.createWebhookEndpoint({ url, eventTypes: types });
      setSecret({ url: reply.endpoint?.url ?? url, value: reply.endpoint?.secret ?? "" });
      setUrl("");
    });
  }

  const rotate = (e: WebhookEndpoint) =>
    act(async () => {
      const reply = await webhooks.rotateWebhookSecret({ id: e.id });
      setSecret({ url: e.url, value: reply.endpoint?.secret ?? "" });
    });
  const remove = (e: WebhookEndpoint) => act(async () => void (await webhooks.deleteWebhookEndpoint({ id: e.id })));
  const enable = (e: WebhookEndpoint) => act(async () => void (await webhooks.enableWebhookEndpoint({ id: e.id })));
  // The test event is queued as a delivery: open the endpoint's log, which follows it until it settles.
  const sendTest = (e: WebhookEndpoint) =>
    act(async () => {
      await webhooks.sendTestWebhook({ endpointId: e.id });
      setOpen(e.id);
      setTested((n) => n + 1);
    });

  return (
    <section className="card" data-testid="webhooks" aria-labelledby="webhooks-title">
      <h2 id="webhooks-title">Webhooks</h2>
      <ErrorBanner error={error} onClose={() => setError(null)} />
      {secret && (
        <div className="notice" role="status" data-testid="webhook-secret">
          <p>
            Signing secret for <strong>{secret.url}</strong> — copy it now, it is not shown again:
          </p>
          <code className="secret">{secret.value}</code>
          <button className="link" onClick={() => setSecret(null)}>
            Done
          </button>
        </div>
      )}
      <form onSubmit={add} data-testid="webhook-form">
        <Field label="Endpoint URL" error={fieldError(error, "url")}>
          <input name="webhookUrl" type="url" value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://example.com/hooks/viarte" required />
        </Field>
        <fieldset className="scopes">
          <legend className="small muted">Events (none checked = all)</legend>
          {EVENT_TYPES.map((t) => (
            <label key={t} className="checkbox">
              <input type="checkbox" checked={types.includes(t)} onChange={(e) => setTypes((ts) => (e.target.checked ? [...ts, t] : ts.filter((x) => x !== t)))} /> {t}
            </label>
          ))}
        </fieldset>
        <button type="submit" className="primary" data-testid="add-webhook">
          Add endpoint
        </button>
      </form>
      <ul className="endpoint-list" data-testid="webhook-list">
        {endpoints.map((e) => (
          <li key={e.id} data-testid="webhook-endpoint" data-endpoint-id={e.id} data-disabled={e.disabled}>
            <div className="row">
              <code>{e.url}</code>
              <span className="small muted">{e.eventTypes.length ? e.eventTypes.join(", ") : "all events"}</span>
              {e.disabled && (
                <span className="badge failed" title={e.disabledReason}>
                  disabled{e.disabledReason ? `: ${e.disabledReason}` : ""}
                </span>
              )}
              <span className="spacer" />
              {e.disabled && (
                <button className="link" onClick={() => void enable(e)} data-testid="enable-webhook">
                  Enable
                </button>
              )}
              <button className="link" onClick={() => void sendTest(e)} disabled={e.disabled} aria-label={`Send a test event to ${e.url}`} data-testid="send-test-webhook">
                Send test
              </button>
              <button className="link" onClick={() => setOpen(open === e.id ? null : e.id)} aria-expanded={open === e.id} data-testid="show-deliveries">
                Deliveries
              </button>
              <button className="link" onClick={() => void rotate(e)}>
                Rotate secret
              </button>
              <button className="link danger" onClick={() => void remove(e)} aria-label={`Delete ${e.url}`}>
                Delete
              </button>
            </div>
            {open === e.id && <Deliveries endpoint={e} onError={setError} version={tested} />}
          </li>
        ))}
      </ul>
      {endpoints.length === 0 && <p className="muted small">No endpoints yet.</p>}
    </section>
  );
}
