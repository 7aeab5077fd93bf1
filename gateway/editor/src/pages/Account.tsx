// The Account page (issue 16): API keys, usage and credits, webhook endpoints. Each section loads
// and fails on its own, so a key without one scope still sees the others.
import { ApiKeys } from "../account/ApiKeys";
import { Usage } from "../account/Usage";
import { Webhooks } from "../account/Webhooks";

export default function Account() {
  return (
    <section className="page account" data-testid="account-page">
      <h1>Account</h1>
      <Usage />
      <ApiKeys />
      <Webhooks />
    </section>
  );
}
