import { useEffect, useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router-dom";
import { projects } from "../api/client";
import { toUiError, type UiError } from "../api/errors";
import { ErrorBanner } from "../components/common";
import type { Project } from "../gen/viarte/render/v1/project_pb";
import { emptyTimeline, toProto } from "../timeline/model";

export default function Projects() {
  const navigate = useNavigate();
  const [list, setList] = useState<Project[]>([]);
  const [title, setTitle] = useState("");
  const [error, setError] = useState<UiError | null>(null);

  useEffect(() => {
    projects.listProjects({ pageSize: 50 }).then(
      (reply) => setList(reply.projects),
      (err) => setError(toUiError(err)),
    );
  }, []);

  async function create(event: FormEvent) {
    event.preventDefault();
    try {
      const reply = await projects.createProject({
        requestId: crypto.randomUUID(),
        project: { title: title || "Untitled project", timeline: toProto(emptyTimeline()) },
      });
      if (reply.project) navigate(`/projects/${reply.project.id}`);
    } catch (err) {
      setError(toUiError(err));
    }
  }

  return (
    <section className="page" data-testid="projects-page">
      <h1>Projects</h1>
      <ErrorBanner error={error} onClose={() => setError(null)} />
      <form className="row" onSubmit={create}>
        <input placeholder="New project title" value={title} onChange={(e) => setTitle(e.target.value)} name="title" />
        <button type="submit" data-testid="new-project">New project</button>
      </form>
      <ul className="project-list">
        {list.map((p) => (
          <li key={p.id}>
            <Link to={`/projects/${p.id}`}>{p.title}</Link>
            <span className="muted small"> · {p.timeline?.tracks.reduce((n, t) => n + t.clips.length, 0) ?? 0} clips</span>
            <Link className="small" to={`/projects/${p.id}/export`}> Export</Link>
          </li>
        ))}
      </ul>
    </section>
  );
}
