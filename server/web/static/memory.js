// The memory panel: what recall put in a turn's prompt, the rolling summary, the project's entities
// (edit, delete) and a search over the project's memory. Everything shown is escaped.

import {json} from "./api.js";
import {escapeHtml} from "./markdown.js";

const $ = (id) => document.getElementById(id);

function q(projectId) {
  return projectId ? `?projectId=${encodeURIComponent(projectId)}` : "";
}

function scoreLine(parts) {
  if (!parts) return "";
  const bits = [];
  if (parts.lexical) bits.push(`words: rank ${parts.lexical.rank}, bm25 ${parts.lexical.bm25}`);
  if (parts.vector) {
    const rank = parts.vector.rank == null ? "below threshold" : `rank ${parts.vector.rank}`;
    bits.push(`meaning: similarity ${parts.vector.similarity}, ${rank}`);
  }
  if (parts.date) bits.push(`the day named: rank ${parts.date.rank}`);
  return bits.join(" · ");
}

export function showRecall(turn) {
  const box = $("recall");
  if (!turn) {
    box.innerHTML = '<p class="muted">No record for this reply.</p>';
    return;
  }
  const r = turn.recall;
  if (!r) {
    box.innerHTML = `<p class="muted">Turn ${turn.turn} was stored before recall records were kept.</p>`;
    return;
  }
  const flags = [
    `<span class="badge">turn ${turn.turn}</span>`,
    `<span class="badge ${r.summaryUsed ? "on" : ""}">summary ${r.summaryUsed ? "used" : "not used"}</span>`,
    r.degraded ? `<span class="badge warn" title="${escapeHtml(r.error || "")}">recall degraded</span>` : "",
  ].join(" ");
  const episodes = r.episodes.length
    ? r.episodes.map((e) => `<li class="recalled-episode${e.inPrompt ? "" : " left-out"}">
        <div class="score">score ${e.score ?? "?"}${e.sessionId ? ` · from ${escapeHtml(e.sessionId)}` : ""}
          ${e.inPrompt ? "" : " · left out by the token budget"}</div>
        <div class="why">${escapeHtml(scoreLine(e.scoreParts))}</div>
        <pre class="doc">${escapeHtml(e.text)}</pre></li>`).join("")
    : '<li class="muted none">No earlier exchange was recalled.</li>';
  const entities = r.entities.length
    ? r.entities.map((e) => `<li>${escapeHtml(e.text)}${e.score == null ? "" : ` <span class="muted">(${e.score >= 1 ? "named in the message" : `similarity ${e.score}`})</span>`}</li>`).join("")
    : '<li class="muted none">No entity.</li>';
  box.innerHTML = `<p>${flags}</p><h4>Episodes</h4><ol class="recall-list">${episodes}</ol>
    <h4>Entities</h4><ul>${entities}</ul>`;
}

export function showSummary(summary) {
  $("summary").textContent = summary || "No summary yet.";
  $("summary").classList.toggle("muted", !summary);
}

export async function loadEntities(projectId, onError) {
  const box = $("entities");
  try {
    const {entities} = await json(`/entities${q(projectId)}`);
    if (!entities.length) {
      box.innerHTML = '<p class="muted">None yet: they are found while the summary is written, or added here.</p>';
    } else {
      box.innerHTML = "";
      for (const e of entities) box.appendChild(entityRow(e, projectId, onError));
    }
  } catch (exc) {
    onError(exc);
  }
}

function entityRow(entity, projectId, onError) {
  const row = document.createElement("div");
  row.className = "entity";
  row.dataset.id = entity.id;
  row.innerHTML = `<span class="entity-text"><strong>${escapeHtml(entity.name)}</strong>
    <em>${escapeHtml(entity.type)}</em> ${escapeHtml(entity.notes)}</span>
    <button class="edit-entity">Edit</button> <button class="delete-entity danger">Delete</button>`;
  row.querySelector(".edit-entity").onclick = () => {
    row.innerHTML = `<input class="entity-name" value="${escapeHtml(entity.name)}" aria-label="Entity name">
      <input class="entity-type" value="${escapeHtml(entity.type)}" aria-label="Entity type">
      <input class="entity-notes" value="${escapeHtml(entity.notes)}" aria-label="Entity notes">
      <button class="save-entity primary">Save</button>`;
    row.querySelector(".save-entity").onclick = async () => {
      try {
        await json(`/entities/${encodeURIComponent(entity.id)}`, {method: "PATCH", body: {
          name: row.querySelector(".entity-name").value, type: row.querySelector(".entity-type").value,
          notes: row.querySelector(".entity-notes").value}});
        await loadEntities(projectId, onError);
      } catch (exc) {
        onError(exc);
      }
    };
  };
  row.querySelector(".delete-entity").onclick = async () => {
    if (!confirm(`Delete the entity “${entity.name}”?`)) return;
    try {
      await json(`/entities/${encodeURIComponent(entity.id)}`, {method: "DELETE"});
      await loadEntities(projectId, onError);
    } catch (exc) {
      onError(exc);
    }
  };
  return row;
}

export async function searchMemory(query, projectId, onError) {
  const box = $("memory-results");
  try {
    const body = {query, k: 5};
    if (projectId) body.projectId = projectId;
    const {results} = await json("/memory/search", {method: "POST", body});
    box.innerHTML = results.length
      ? `<ol class="recall-list">${results.map((r) => `<li><div class="score">score ${r.score} · from
          ${escapeHtml(r.sessionId)}</div><div class="why">${escapeHtml(scoreLine(r.scoreParts))}</div>
          <pre class="doc">${escapeHtml(r.text)}</pre></li>`).join("")}</ol>`
      : '<p class="muted">Nothing found.</p>';
  } catch (exc) {
    onError(exc);
  }
}
