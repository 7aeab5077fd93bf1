import { StrictMode, Suspense, lazy } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Navigate, Route, Routes } from "react-router-dom";
import { AuthProvider, RequireAuth } from "./auth/AuthContext";
import { Layout } from "./components/Layout";
import "./styles.css";

// Every page is its own chunk, fetched when its route is first visited.
const Login = lazy(() => import("./pages/Login"));
const Register = lazy(() => import("./pages/Register"));
const Assets = lazy(() => import("./pages/Assets"));
const Generate = lazy(() => import("./pages/Generate"));
const Projects = lazy(() => import("./pages/Projects"));
const Editor = lazy(() => import("./pages/Editor"));
const Export = lazy(() => import("./pages/Export"));
const Training = lazy(() => import("./pages/Training"));
const Account = lazy(() => import("./pages/Account"));

function App() {
  return (
    <BrowserRouter>
      <AuthProvider>
        <Suspense fallback={<div className="loading">Loading…</div>}>
          <Routes>
            <Route path="/login" element={<Login />} />
            <Route path="/register" element={<Register />} />
            <Route element={<RequireAuth><Layout /></RequireAuth>}>
              <Route path="/assets" element={<Assets />} />
              <Route path="/generate" element={<Generate />} />
              <Route path="/projects" element={<Projects />} />
              <Route path="/projects/:projectId" element={<Editor />} />
              <Route path="/projects/:projectId/export" element={<Export />} />
              <Route path="/training" element={<Training />} />
              <Route path="/account" element={<Account />} />
            </Route>
            <Route path="*" element={<Navigate to="/assets" replace />} />
          </Routes>
        </Suspense>
      </AuthProvider>
    </BrowserRouter>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
