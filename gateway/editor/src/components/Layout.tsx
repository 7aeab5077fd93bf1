import { NavLink, Outlet } from "react-router-dom";
import { useAuth } from "../auth/AuthContext";

export function Layout() {
  const { session, logout } = useAuth();
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
        <span className="who" data-testid="current-user">{session?.user.email}</span>
        <button className="link" onClick={() => void logout()}>Sign out</button>
      </header>
      <main>
        <Outlet />
      </main>
    </div>
  );
}
