// The page: sessions grouped by project, the chat (streamed replies, stop), and the memory panel.
// It uses the public API only (README: "The web page").

import {json, onKeyNeeded, streamChat} from "./api.js";
import {escapeHtml, renderMarkdown} from "./markdown.js";
import {loadEntities, searchMemory, showRecall, showSummary} from "./memory.js";
import {installVoice} from "./voice.js";

const $ = (id) => document.getElementById(id);
const NO_PROJECT = "__none__";
const state = {projects: [], sessions: [], current: null, turns: new Map(), controller: null, creating: null};
let voice = {follow() {}}; // voice mode (voice.js), wired in start()

function showError(exc) {
  if (exc && exc.name === "AbortError") return;
  const box = $("error");
  box.textContent = `${exc && exc.message ? exc.message : exc} (click to dismiss)`;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

onKeyNeeded((wrong) => new Promise((resolve) => {
  const dialog = $("key-dialog");
  $("key-problem").hidden = !wrong;
  $("key-problem").textContent = wrong ? "That key was refused: try another." : "";
  $("key-input").value = "";
  $("key-form").onsubmit = () => resolve($("key-input").value.trim());
  if (!dialog.open) dialog.showModal();
}));

function projectName(id) {
  const project = state.projects.find((p) => p.id === id);
  return project ? project.name : id;
}

function fillProjectSelect(select, withAll) {
  const current = select.value;
  const options = withAll ? [["", "All projects"]] : [];
  options.push([NO_PROJECT, "No project"], ...state.projects.map((p) => [p.id, p.name]));
  select.innerHTML = options.map(([v, l]) => `<option value="${escapeHtml(v)}">${escapeHtml(l)}</option>`).join("");
  if (options.some(([v]) => v === current)) select.value = current;
}

async function refresh() {
  try {
    const [projects, sessions] = await Promise.all([json("/projects"), json("/sessions?limit=200")]);
    state.projects = projects.projects;
    state.sessions = sessions.sessions;
    fillProjectSelect($("project-filter"), true);
    fillProjectSelect($("move-session"), false);
    renderSessions();
    if (state.current) {
      const row = state.sessions.find((s) => s.id === state.current.id);
      if (row) showSessionBar(row);
    }
  } catch (exc) {
    showError(exc);
  }
}

function renderSessions() {
  const filter = $("project-filter").value;
  const needle = $("session-search").value.trim().toLowerCase();
  const groups = new Map();
  for (const s of state.sessions) { // newest first: the API's order
    const key = s.projectId || NO_PROJECT;
    if (filter && key !== filter) continue;
    if (needle && !(s.name || s.id).toLowerCase().includes(needle)) continue;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(s);
  }
  const list = $("session-list");
  if (!groups.size) {
    list.innerHTML = '<p class="muted">No sessions here yet.</p>';
    return;
  }
  list.innerHTML = [...groups].map(([key, sessions]) => `<div class="group">
      <h3>${escapeHtml(key === NO_PROJECT ? "No project" : projectName(key))}</h3>
      <ul>${sessions.map((s) => `<li><button class="session${state.current && state.current.id === s.id ? " active" : ""}"
        data-id="${escapeHtml(s.id)}">${escapeHtml(s.name || "Untitled session")}
        <small>${escapeHtml(new Date(s.updatedAt || s.createdAt).toLocaleString())}</small></button></li>`).join("")}</ul>
    </div>`).join("");
  for (const button of list.querySelectorAll("button.session")) button.onclick = () => openSession(button.dataset.id);
}

function showSessionBar(session) {
  state.current = {...state.current, ...session};
  $("session-bar").hidden = false;
  $("session-name").textContent = session.name || "Untitled session";
  $("move-session").value = session.projectId || NO_PROJECT;
}

function toolCallsHtml(calls) {
  return calls.map((c) => `<div class="tool-call"><span class="badge">tool call</span>
    <code>${escapeHtml(c.name)}(${escapeHtml(typeof c.arguments === "string" ? c.arguments : JSON.stringify(c.arguments))})</code></div>`).join("");
}

function messageElement(role, html, extraClass = "") {
  const el = document.createElement("div");
  el.className = `message ${role} ${extraClass}`.trim();
  el.innerHTML = `<div class="role">${role}</div><div class="body">${html}</div>`;
  $("messages").appendChild(el);
  el.scrollIntoView({block: "end"});
  return el;
}

function renderMessages(messages) {
  $("messages").innerHTML = messages.length ? "" : '<p class="empty">No messages yet: say something.</p>';
  for (const m of messages) {
    if (m.role === "user") {
      messageElement("user", `<p class="plain">${escapeHtml(m.content)}</p>`);
    } else if (m.role === "tool") {
      messageElement("tool", `<span class="badge">tool result</span><pre>${escapeHtml(m.content)}</pre>`);
    } else if (m.role === "assistant") {
      const cut = m.interrupted ? '<p class="muted">[interrupted: only what was heard is kept]</p>' : "";
      const el = messageElement("assistant", renderMarkdown(m.content) + cut + toolCallsHtml(m.toolCalls || []));
      el.dataset.id = m.id;
      const turn = state.turns.get(m.id);
      if (turn) {
        const button = document.createElement("button");
        button.className = "show-recall link";
        const n = turn.recall ? turn.recall.episodes.filter((e) => e.inPrompt).length : 0;
        button.textContent = `memory: ${n} recalled episode${n === 1 ? "" : "s"}`;
        button.onclick = () => {
          showRecall(turn);
          openMemory(true);
        };
        el.appendChild(button);
      }
    }
  }
}

async function openSession(id) {
  clearError();
  try {
    const [session, messages, turns] = await Promise.all([
      json(`/sessions/${encodeURIComponent(id)}`), json(`/sessions/${encodeURIComponent(id)}/messages`),
      json(`/sessions/${encodeURIComponent(id)}/turns`)]);
    state.current = session;
    voice.follow(id);
    state.turns = new Map(turns.turns.filter((t) => t.messageId).map((t) => [t.messageId, t]));
    history.replaceState(null, "", `#session=${encodeURIComponent(id)}`);
    showSessionBar(session);
    renderMessages(messages.messages);
    renderSessions();
    showSummary(session.summary);
    showRecall(turns.turns.length ? turns.turns[turns.turns.length - 1] : null);
    await loadEntities(session.projectId, showError);
    if (window.innerWidth < 800) $("sessions").classList.remove("open");
  } catch (exc) {
    showError(exc);
  }
}

function newSession() {
  // Kept while it runs: a message sent meanwhile goes to this session, not to a second new one.
  state.creating = createSession().finally(() => {
    state.creating = null;
  });
  return state.creating;
}

async function createSession() {
  clearError();
  const filter = $("project-filter").value;
  const body = filter && filter !== NO_PROJECT ? {projectId: filter} : {};
  try {
    const created = await json("/sessions", {method: "POST", body});
    await refresh();
    await openSession(created.id);
    $("input").focus();
    return created;
  } catch (exc) {
    showError(exc);
    return null;
  }
}

function busy(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
  $("input").disabled = on;
}

async function sendMessage(text) {
  clearError();
  if (state.creating) await state.creating;
  if (!state.current && !(await newSession())) return;
  const session = state.current;
  if ($("messages").querySelector(".empty")) $("messages").innerHTML = "";
  messageElement("user", `<p class="plain">${escapeHtml(text)}</p>`);
  const reply = messageElement("assistant", '<span class="muted">thinking…</span>', "streaming");
  const body = reply.querySelector(".body");
  state.controller = new AbortController();
  busy(true);
  let shown = "";
  try {
    const out = await streamChat({sessionId: session.id, projectId: session.projectId, model: $("model").value,
      message: text, signal: state.controller.signal, onText: (piece) => {
        shown += piece;
        body.innerHTML = renderMarkdown(shown);
        reply.scrollIntoView({block: "end"});
      }});
    body.innerHTML = renderMarkdown(out.text) + toolCallsHtml(out.toolCalls.map((c) => c.function || c));
    await openSession(session.id);
  } catch (exc) {
    if (exc.name === "AbortError") {
      body.innerHTML = renderMarkdown(shown) + '<p class="muted">[stopped: this turn was not stored]</p>';
    } else {
      body.innerHTML = renderMarkdown(shown);
      showError(exc);
    }
    reply.classList.add("failed");
  } finally {
    reply.classList.remove("streaming");
    state.controller = null;
    busy(false);
    $("input").focus();
  }
  await refresh();
  setTimeout(refresh, 1500); // the session's name is chosen right after its first reply
}

function openMemory(on) {
  // Wide screens show the panel unless closed; narrow ones hide it unless opened (app.css).
  $("memory").classList.toggle("open", on);
  $("memory").classList.toggle("closed", !on);
}

async function loadModels() {
  try {
    const models = await json("/models");
    const saved = localStorage.getItem("orchestrator.model");
    $("model").innerHTML = models.map((m) => `<option value="${escapeHtml(m.value)}">${escapeHtml(m.label || m.value)}</option>`).join("");
    if (saved && models.some((m) => m.value === saved)) $("model").value = saved;
  } catch (exc) {
    showError(exc);
  }
}

function wire() {
  $("error").onclick = clearError;
  $("toggle-sessions").onclick = () => $("sessions").classList.toggle("open");
  $("toggle-memory").onclick = () => openMemory(getComputedStyle($("memory")).display === "none");
  $("project-filter").onchange = renderSessions;
  $("session-search").oninput = renderSessions;
  $("new-session").onclick = () => newSession();
  $("model").onchange = () => localStorage.setItem("orchestrator.model", $("model").value);
  $("new-project").onclick = async () => {
    const name = prompt("Name of the new project");
    if (!name || !name.trim()) return;
    try {
      const project = await json("/projects", {method: "POST", body: {name: name.trim()}});
      await refresh();
      $("project-filter").value = project.id;
      renderSessions();
    } catch (exc) {
      showError(exc);
    }
  };
  $("rename-session").onclick = async () => {
    const name = prompt("New name of the session", state.current.name || "");
    if (!name || !name.trim()) return;
    try {
      await json(`/sessions/${encodeURIComponent(state.current.id)}`, {method: "PATCH", body: {name: name.trim()}});
      await refresh();
    } catch (exc) {
      showError(exc);
    }
  };
  $("move-session").onchange = async () => {
    const value = $("move-session").value;
    try {
      await json(`/sessions/${encodeURIComponent(state.current.id)}`, {method: "PATCH",
        body: {projectId: value === NO_PROJECT ? null : value}});
      await refresh();
      await openSession(state.current.id);
    } catch (exc) {
      showError(exc);
    }
  };
  $("delete-session").onclick = async () => {
    const label = state.current.name || state.current.id;
    if (!confirm(`Delete the session “${label}” and everything it remembers?`)) return;
    try {
      await json(`/sessions/${encodeURIComponent(state.current.id)}`, {method: "DELETE"});
      state.current = null;
      voice.follow(null);
      history.replaceState(null, "", "#");
      $("session-bar").hidden = true;
      $("messages").innerHTML = '<p class="empty">Session deleted. Pick another, or start a new one.</p>';
      await refresh();
    } catch (exc) {
      showError(exc);
    }
  };
  $("composer").onsubmit = (event) => {
    event.preventDefault();
    const text = $("input").value.trim();
    if (!text || state.controller) return;
    $("input").value = "";
    sendMessage(text);
  };
  $("input").onkeydown = (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  };
  $("stop").onclick = () => state.controller && state.controller.abort();
  $("memory-search").onsubmit = (event) => {
    event.preventDefault();
    const query = $("memory-query").value.trim();
    if (query) searchMemory(query, state.current ? state.current.projectId : null, showError);
  };
}

async function start() {
  wire();
  voice = installVoice({
    ensureSession: async () => {
      if (state.creating) await state.creating;
      return state.current || ((await newSession()) && state.current);
    },
    addMessage: (role, html, extraClass) => {
      $("messages").querySelector(".empty")?.remove();
      return messageElement(role, html, extraClass);
    },
    showError,
    settled: async () => {
      if (state.current) await openSession(state.current.id);
      await refresh();
      setTimeout(refresh, 1500); // as after a typed reply: the session's name comes just after its first turn
    },
  });
  await refresh();
  await loadModels();
  const match = location.hash.match(/^#session=(.+)$/);
  if (match) await openSession(decodeURIComponent(match[1]));
}

start();
