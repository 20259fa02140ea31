// Talking to the service's public API: the API key (asked for once, kept in this tab's sessionStorage),
// errors in words (the service's own message), and the chat stream (OpenAI's SSE chunks).

const KEY_STORE = "orchestrator.apiKey";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let askForKey = null; // set by the page: () => Promise<string>, resolves with the key the user typed

export function onKeyNeeded(fn) {
  askForKey = fn;
}

function headers(extra = {}) {
  const out = {...extra};
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

async function problem(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const err = body.error || body.detail || body;
    message = typeof err === "string" ? err : err.message || JSON.stringify(err);
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message);
}

// fetch with the key; on 401 ask for a key (once per failure) and try again.
export async function send(path, options = {}, retried = false) {
  let response;
  try {
    response = await fetch(path, {...options, headers: headers(options.headers)});
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, `The service could not be reached (${exc.message}). Is it running?`);
  }
  if (response.status === 401 && askForKey && !retried) {
    const wrong = Boolean(sessionStorage.getItem(KEY_STORE));
    sessionStorage.setItem(KEY_STORE, await askForKey(wrong));
    return send(path, options, true);
  }
  if (!response.ok) throw await problem(response);
  return response;
}

export async function json(path, options = {}) {
  const init = {...options};
  if (init.body !== undefined && typeof init.body !== "string") {
    init.body = JSON.stringify(init.body);
    init.headers = {"Content-Type": "application/json", ...(init.headers || {})};
  }
  const response = await send(path, init);
  return response.status === 204 ? null : response.json();
}

// One streamed turn on /v1/chat/completions. Calls onText(text) per piece and returns
// {text, toolCalls}; throws ApiError for an error (before or within the stream), AbortError when stopped.
export async function streamChat({sessionId, projectId, model, message, signal, onText}) {
  const extra = {"Content-Type": "application/json", "X-Session-Id": sessionId};
  if (projectId) extra["X-Project-Id"] = projectId;
  const body = {messages: [{role: "user", content: message}], stream: true};
  if (model) body.model = model;
  const response = await send("/v1/chat/completions", {method: "POST", headers: extra, body: JSON.stringify(body), signal});
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let text = "";
  const toolCalls = [];
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return {text, toolCalls};
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(500, chunk.error.message || "The turn failed.");
        const delta = (chunk.choices && chunk.choices[0] && chunk.choices[0].delta) || {};
        if (delta.content) {
          text += delta.content;
          onText(delta.content);
        }
        for (const call of delta.tool_calls || []) toolCalls.push(call);
      }
    }
  }
  return {text, toolCalls};
}
