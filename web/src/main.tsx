import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { signal } from "@preact/signals";
import "./styles.css";
import { apiKey, get, needsKey, signIn, signOut } from "./api";
import { feedLagged, feedState, startFeed } from "./feed";
import { go, href, match, onLinkClick, path } from "./router";
import { latencies } from "./live";
import { Home } from "./views/Home";
import { ConversationPage } from "./views/Conversation";
import { SessionPage } from "./views/Session";
import { Sessions } from "./views/Sessions";
import { Machine, MachineSession } from "./views/Machine";
import { Agents } from "./views/Agents";
import { Dashboard } from "./views/Dashboard";

const theme = signal<string>(
  localStorage.getItem("ccgw.theme") ?? (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"),
);
theme.subscribe((t) => {
  document.documentElement.dataset.theme = t;
  localStorage.setItem("ccgw.theme", t);
});

function SignIn() {
  const [key, setKey] = useState("");
  const [remember, setRemember] = useState(false);
  const [err, setErr] = useState("");
  const submit = async (e: Event) => {
    e.preventDefault();
    const candidate = key.trim();
    // Checked before it is kept: a refused key never replaces the current one.
    const r = await fetch("/admin/api/stats?since=" + Date.now(), { headers: { authorization: `Bearer ${candidate}` } });
    if (r.ok) {
      setErr("");
      signIn(candidate, remember);
    } else setErr(r.status === 401 ? "That key was refused." : `The gateway answered ${r.status}.`);
  };
  return (
    <main class="signin">
      <form onSubmit={submit} aria-label="sign in">
        <h1>ccgw console</h1>
        <p>This gateway needs an API key.</p>
        <label>
          API key
          <input type="password" autoComplete="current-password" value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} autoFocus required />
        </label>
        <label class="row">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember((e.target as HTMLInputElement).checked)} /> Remember on this device
        </label>
        <button type="submit">Sign in</button>
        {err && <div class="error" role="alert">{err}</div>}
      </form>
    </main>
  );
}

const NAV: [string, string][] = [
  ["/", "Live"],
  ["/sessions", "Sessions"],
  ["/machine", "Machine sessions"],
  ["/agents", "Agents & tools"],
  ["/dashboard", "Dashboard"],
];

function Route() {
  const p = path.value;
  let m;
  if (p === "/") return <Home />;
  if (p === "/sessions") return <Sessions />;
  if ((m = match("/sessions/:id", p))) return <SessionPage id={m.id} />;
  if ((m = match("/c/:id", p))) return <ConversationPage id={m.id} />;
  if (p === "/machine") return <Machine />;
  if ((m = match("/machine/:id", p))) return <MachineSession id={m.id} />;
  if (p === "/agents") return <Agents />;
  if (p === "/dashboard") return <Dashboard />;
  return <p>Nothing at {p}.</p>;
}

function App() {
  const [checked, setChecked] = useState(false);
  useEffect(() => {
    get("/admin/api/stats?since=" + Date.now())
      .catch(() => {})
      .finally(() => setChecked(true));
  }, []);
  useEffect(() => {
    if (checked && !needsKey.value) startFeed();
  }, [checked, needsKey.value]);
  if (!checked) return <p class="muted pad">Loading…</p>;
  if (needsKey.value) return <SignIn />;
  const p = path.value;
  return (
    <div class="shell" onClick={onLinkClick}>
      <a class="skip" href="#main">Skip to content</a>
      <header>
        <a class="brand" href={href("/")}>ccgw</a>
        <nav aria-label="main">
          {NAV.map(([to, label]) => (
            <a key={to} href={href(to)} aria-current={(to === "/" ? p === "/" || p.startsWith("/c/") : p.startsWith(to)) ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class={`feed ${feedState.value}`} title={`live feed: ${feedState.value}`} aria-label={`live feed ${feedState.value}`}>
          ● {feedState.value}
          {feedLagged.value > 0 && ` (${feedLagged.value} missed)`}
        </span>
        <button class="icon" aria-label="toggle dark theme" onClick={() => (theme.value = theme.value === "dark" ? "light" : "dark")}>
          {theme.value === "dark" ? "☀" : "☾"}
        </button>
        {apiKey.value && (
          <button class="icon" onClick={signOut}>
            Sign out
          </button>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        <Route />
      </main>
    </div>
  );
}

// For the benchmark (bench/console.mjs): latencies measured here, and in-app navigation.
Object.assign(window, { __ccgw: { latencies, go } });

render(<App />, document.getElementById("app")!);
