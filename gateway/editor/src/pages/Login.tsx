import { useState, type FormEvent } from "react";
import { Link, Navigate, useLocation, useNavigate } from "react-router-dom";
import { fieldError, toUiError, type UiError } from "../api/errors";
import { useAuth } from "../auth/AuthContext";
import { ErrorBanner, Field } from "../components/common";

export default function Login() {
  const { session, login } = useAuth();
  const navigate = useNavigate();
  const location = useLocation();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<UiError | null>(null);
  const [busy, setBusy] = useState(false);
  const from = (location.state as { from?: string } | null)?.from ?? "/assets";
  if (session) return <Navigate to={from} replace />;

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(email, password);
      navigate(from, { replace: true });
    } catch (err) {
      setError(toUiError(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="auth-page">
      <form className="card auth-card" onSubmit={submit} data-testid="login-form">
        <h1>Sign in to Viarte Studio</h1>
        <ErrorBanner error={error} />
        <Field label="Email" error={fieldError(error, "email")}>
          <input name="email" type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} required />
        </Field>
        <Field label="Password" error={fieldError(error, "password")}>
          <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
        </Field>
        <button type="submit" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
        <p>
          New here? <Link to="/register">Create an account</Link>
        </p>
      </form>
    </main>
  );
}
