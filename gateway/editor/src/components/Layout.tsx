import { Code, ConnectError } from "@connectrpc/connect";
import { useEffect, useState } from "react";
import { NavLink, Outlet } from "react-router-dom";
import { auth } from "../api/client";
import { useAuth } from "../auth/AuthContext";

const TRANSIENT = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Aborted]);

export function Layout() {
  const { session, logout } = useAuth();
  const [name, setName] = useState<string | null>(null);

  // Confirms the stored session with the server (refreshing it first when the access token is old).
  // A transient failure (the gateway or auth busy, a dropped connection) is retried with backoff:
  // one lost GetMe must not leave the header without a name for the rest of the visit.
  useEffect(() => {
    let live = true;
    let timer: number | undefined;
    const load = (attempt: number) =>
      auth.getMe({}).then(
        (reply) => live && setName(reply.user?.displayName || reply.user?.email || null),
        (error: unknown) => {
          if (!live) return;
          if (attempt < 6 && TRANSIENT.has(ConnectError.from(error).code)) {
            timer = window.setTimeout(() => void load(attempt + 1), 250 * 2 ** attempt);
          } else {
            setName(null);
          }
        },
      );
    void load(0);
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, []);

  return (
    <div className="app">
      <header className="topbar">
        <span className="brand">Viarte Studio</span>
        <nav aria-label="Main">
          <NavLink to="/assets">Library</NavLink>
          <NavLink to="/generate">Generate</NavLink>
          <NavLink to="/projects">Projects</NavLink>
          <NavLink to="/training">Training</NavLink>
          <NavLink to="/account">Account</NavLink>
        </nav>
        <span className="spacer" />
        {name && <span className="muted" data-testid="display-name">{name}</span>}
        <span className="who" data-testid="current-user">{session?.user.email}</span>
        <button className="link" onClick={() => void logout()}>Sign out</button>
      </header>
      <main>
        <Outlet />
      </main>
    </div>
  );
}
