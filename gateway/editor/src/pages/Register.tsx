import { useState, type FormEvent } from "react";
import { Link, Navigate, useNavigate } from "react-router-dom";
import { fieldError, toUiError, type UiError } from "../api/errors";
import { useAuth } from "../auth/AuthContext";
import { ErrorBanner, Field } from "../components/common";

export default function Register() {
  const { session, register } = useAuth();
  const navigate = useNavigate();
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<UiError | null>(null);
  const [busy, setBusy] = useState(false);
  if (session) return <Navigate to="/assets" replace />;

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await register(email, password, name);
      navigate("/assets", { replace: true });
    } catch (err) {
      setError(toUiError(err));
    } finally {
      setBusy(false);
    }
  }

  const emailError = fieldError(error, "email") ?? (error?.reason === "INVALID_EMAIL" || error?.reason === "EMAIL_TAKEN" ? error.message : undefined);
  const passwordError = fieldError(error, "password") ?? (error?.reason === "WEAK_PASSWORD" ? error.message : undefined);
  return (
    <main className="auth-page">
      <form className="card auth-card" onSubmit={submit} data-testid="register-form">
        <h1>Create your account</h1>
        <ErrorBanner error={emailError || passwordError ? null : error} />
        <Field label="Name">
          <input name="displayName" value={name} onChange={(e) => setName(e.target.value)} />
        </Field>
        <Field label="Email" error={emailError}>
          <input name="email" type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} required />
        </Field>
        <Field label="Password" error={passwordError} hint="At least 8 characters.">
          <input name="password" type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
        </Field>
        <button type="submit" disabled={busy}>{busy ? "Creating…" : "Create account"}</button>
        <p>
          Already have an account? <Link to="/login">Sign in</Link>
        </p>
      </form>
    </main>
  );
}
