// API keys: create (name, scopes, lifetime, limits), list, revoke. The secret is shown once,
// right after create; the list only ever has the prefix.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { auth } from "../api/client";
import { fieldError, toUiError, type UiError } from "../api/errors";
import { ErrorBanner, Field } from "../components/common";
import type { ApiKey } from "../gen/viarte/auth/v1/auth_pb";
import { describeLimits, EMPTY_LIMITS, limitsFromForm, SCOPES, type LimitsForm } from "./usage";
import { formatTime } from "./format";

const DEFAULT_SCOPES = ["assets:read", "assets:write", "jobs:read", "jobs:write"];

export function ApiKeys() {
  const [keys, setKeys] = useState<ApiKey[]>([]);
  const [error, setError] = useState<UiError | null>(null);
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<string[]>(DEFAULT_SCOPES);
  const [ttlDays, setTtlDays] = useState("");
  const [limits, setLimits] = useState<LimitsForm>(EMPTY_LIMITS);
  const [secret, setSecret] = useState<{ name: string; value: string } | null>(null);

  const load = useCallback(async () => {
    try {
      setKeys((await auth.listApiKeys({})).apiKeys);
    } catch (err) {
      setError(toUiError(err));
    }
  }, []);
  useEffect(() => void load(), [load]);

  async function create(event: FormEvent) {
    event.preventDefault();
    setError(null);
    try {
      const ttl = ttlDays.trim() === "" ? 0 : Math.round(Number(ttlDays) * 86_400);
      const reply = await auth.createApiKey({ name, scopes, ttlSeconds: BigInt(ttl), limits: limitsFromForm(limits) });
      setSecret({ name: reply.apiKey?.name ?? name, value: reply.secret });
      setName("");
      await load();
    } catch (err) {
      setError(toUiError(err));
    }
  }

  async function revoke(key: ApiKey) {
    setError(null);
    try {
      await auth.revokeApiKey({ id: key.id });
      await load();
    } catch (err) {
      setError(toUiError(err));
    }
  }

  const toggle = (scope: string, on: boolean) => setScopes((s) => (on ? [...s, scope] : s.filter((x) => x !== scope)));
  const limit = (key: keyof LimitsForm, label: string) => (
    <Field label={label} error={fieldError(error, `limits.${key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`)} hint="Empty = none">
      <input name={key} inputMode="numeric" value={limits[key]} onChange={(e) => setLimits((l) => ({ ...l, [key]: e.target.value }))} />
    </Field>
  );
  return (
    <section className="card" data-testid="api-keys" aria-labelledby="api-keys-title">
      <h2 id="api-keys-title">API keys</h2>
      <ErrorBanner error={error} onClose={() => setError(null)} />
      {secret && (
        <div className="notice" role="status" data-testid="api-key-secret">
          <p>
            The secret of <strong>{secret.name}</strong> — copy it now, it is not shown again:
          </p>
          <code className="secret">{secret.value}</code>
          <button className="link" onClick={() => setSecret(null)}>
            Done
          </button>
        </div>
      )}
      <form onSubmit={create} data-testid="api-key-form">
        <div className="grid4">
          <Field label="Name" error={fieldError(error, "name")}>
            <input name="keyName" value={name} onChange={(e) => setName(e.target.value)} required />
          </Field>
          <Field label="Expires after (days)" error={fieldError(error, "ttl_seconds")} hint="Empty = never">
            <input name="ttlDays" inputMode="decimal" value={ttlDays} onChange={(e) => setTtlDays(e.target.value)} />
          </Field>
        </div>
        <fieldset className="scopes">
          <legend className="small muted">Scopes</legend>
          {SCOPES.map((scope) => (
            <label key={scope} className="checkbox">
              <input type="checkbox" name="scope" value={scope} checked={scopes.includes(scope)} onChange={(e) => toggle(scope, e.target.checked)} /> {scope}
            </label>
          ))}
        </fieldset>
        <div className="grid4">
          {limit("monthlyCreditBudget", "Credits per month")}
          {limit("createsPerMinute", "Job creates per minute")}
          {limit("readsPerMinute", "Job reads per minute")}
          {limit("maxConcurrentJobs", "Jobs at once")}
        </div>
        <button type="submit" className="primary" data-testid="create-api-key">
          Create key
        </button>
      </form>
      <table className="table" data-testid="api-key-list">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Key</th>
            <th scope="col">Scopes</th>
            <th scope="col">Limits</th>
            <th scope="col">Last used</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {keys.map((key) => (
            <tr key={key.id} data-testid="api-key-row" data-key-id={key.id} data-revoked={key.revoked}>
              <td>{key.name}</td>
              <td>
                <code>{key.prefix}…</code>
              </td>
              <td className="small">{key.scopes.join(", ")}</td>
              <td className="small">{describeLimits(key.limits)}</td>
              <td className="small">{formatTime(key.lastUsedTime) || "never"}</td>
              <td>
                {key.revoked ? (
                  <span className="badge">revoked</span>
                ) : (
                  <button className="link danger" onClick={() => void revoke(key)} aria-label={`Revoke ${key.name}`}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {keys.length === 0 && <p className="muted small">No API keys yet.</p>}
    </section>
  );
}
