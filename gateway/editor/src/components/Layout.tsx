import { useEffect, useState } from "react";
import { NavLink, Outlet } from "react-router-dom";
import { auth } from "../api/client";
import { useAuth } from "../auth/AuthContext";

export function Layout() {
  const { session, logout } = useAuth();
  const [name, setName] = useState<string | null>(null);

  // Confirms the stored session with the server (refreshing it first when the access token is old).
  useEffect(() => {
    let live = true;
    auth.getMe({}).then(
      (reply) => live && setName(reply.user?.displayName || reply.user?.email || null),
      () => live && setName(null),
    );
    return () => {
      live = false;
    };
  }, []);

  return (
    <div className="app">
      <header className="topbar">
        <span className="brand">Viarte Studio</span>
        <nav>
          <NavLink to="/assets">Library</NavLink>
          <NavLink to="/generate">Generate</NavLink>
          <NavLink to="/projects">Projects</NavLink>
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
