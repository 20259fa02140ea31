// Voice mode: talk to the open session with the browser's own speech recognition and speech synthesis, over
// the realtime WebSocket `GET /orchestrate` (README: "Realtime voice"). What the recognizer hears goes out as
// `stt_fragment` frames (a final result ends the phrase: `vad_end`); each `speak` frame is spoken, and how much
// of it was heard goes back as `playback`: that is what the service keeps when the user talks over the answer.

import {escapeHtml, renderMarkdown} from "./markdown.js";

const KEY_STORE = "orchestrator.apiKey";
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/; // what a Sec-WebSocket-Protocol token may hold
const LABELS = {IDLE: "idle", LISTENING: "listening", THINKING: "thinking", SPEAKING: "speaking",
  INTERRUPT: "interrupted"};
const FATAL = new Set(["not-allowed", "service-not-allowed", "audio-capture", "network", "language-not-supported"]);

/** Whether this browser can do voice mode: {ok: true, Recognition} or {ok: false, reason}. */
export function voiceSupport(win = window) {
  const Recognition = win.SpeechRecognition || win.webkitSpeechRecognition;
  if (!Recognition) {
    return {ok: false, reason: "Voice mode needs speech recognition, which this browser does not have "
      + "(Chrome, Edge and Safari have it)."};
  }
  if (!win.speechSynthesis || !win.SpeechSynthesisUtterance) {
    return {ok: false, reason: "Voice mode needs speech synthesis, which this browser does not have."};
  }
  return {ok: true, Recognition};
}

// The socket's address and subprotocols: browsers cannot set headers on a WebSocket, so the API key goes as
// an `api-key.<key>` subprotocol token beside "realtime" (or as ?api_key= if it is not a valid token).
function socketFor(session) {
  const params = new URLSearchParams({session_id: session.id});
  if (session.projectId) params.set("project_id", session.projectId);
  const protocols = ["realtime"];
  const key = sessionStorage.getItem(KEY_STORE);
  if (key && TOKEN.test(key)) protocols.push(`api-key.${key}`);
  else if (key) params.set("api_key", key);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return new WebSocket(`${scheme}://${location.host}/orchestrate?${params}`, protocols);
}

function closeReason(event) {
  if (event.code === 1008) return `the service refused the voice connection (${event.reason || "API key"})`;
  if (event.code === 4000) return "another tab or device took this session's voice connection over";
  if (event.code === 1009) return "a frame was too big for the service";
  return `the connection closed (code ${event.code}${event.reason ? `: ${event.reason}` : ""})`;
}

/** One voice conversation on one session: the socket, the recognizer, the speaker. */
class VoiceSession {
  constructor(session, Recognition, ui) {
    this.session = session;
    this.ui = ui;
    this.active = true;
    this.serverState = "IDLE";
    this.muted = false; // after a barge-in, until the next turn: what is left of the cut reply is dropped
    this.said = {finals: [], partial: "", el: null}; // the user's utterance, shown as it is recognised
    this.reply = null; // the reply's bubble
    this.streamed = ""; // the reply so far: where each spoken sentence sits in it
    this.cursor = 0;
    this.heard = 0;
    this.queue = []; // utterances given to speechSynthesis and not finished
    this.ws = socketFor(session);
    this.ws.onopen = () => this.listen(Recognition);
    this.ws.onmessage = (event) => this.frame(JSON.parse(event.data));
    this.ws.onclose = (event) => this.stop(`Voice mode stopped: ${closeReason(event)}.`);
  }

  send(frame) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  listen(Recognition) {
    const recognition = new Recognition();
    recognition.continuous = true;
    recognition.interimResults = true;
    recognition.lang = navigator.language || "en-US";
    recognition.onresult = (event) => this.recognised(event);
    recognition.onerror = (event) => {
      if (FATAL.has(event.error)) this.stop(`Voice mode stopped: speech recognition failed (${event.error}).`);
    };
    recognition.onend = () => { // it ends by itself after a silence: keep listening
      if (!this.active) return;
      try {
        recognition.start();
      } catch (exc) {
        this.stop(`Voice mode stopped: speech recognition could not restart (${exc.message}).`);
      }
    };
    this.recognition = recognition;
    recognition.start();
  }

  // Interim results replace each other; each final one is a phrase the recognizer has closed.
  recognised(event) {
    let partial = "";
    for (let i = event.resultIndex; i < event.results.length; i++) {
      const result = event.results[i];
      const text = result[0].transcript.trim();
      if (result.isFinal) this.fragment(text, true);
      else if (text) partial = partial ? `${partial} ${text}` : text;
    }
    if (partial) this.fragment(partial, false);
  }

  fragment(text, isFinal) {
    if (!text) return;
    this.bargeIn(); // the user talks over the answer: stop speaking (the service cuts the reply on this frame)
    if (isFinal) {
      this.said.finals.push(text);
      this.said.partial = "";
    } else {
      this.said.partial = text;
    }
    this.showSaid();
    this.send({type: "stt_fragment", text, is_final: isFinal});
    if (isFinal) this.send({type: "vad_end", confidence: 1});
  }

  showSaid() {
    const text = [...this.said.finals, this.said.partial].filter(Boolean).join(" ");
    if (!this.said.el || !this.said.el.isConnected) this.said.el = this.ui.addMessage("user", "", "voice");
    this.said.el.querySelector(".body").innerHTML = `<p class="plain">${escapeHtml(text)}</p>`;
  }

  bargeIn() {
    const cutting = this.serverState === "THINKING" || this.serverState === "SPEAKING";
    if (!cutting && !this.queue.length) return;
    for (const utterance of this.queue) utterance.cut = true; // their end/error events report nothing more
    this.queue = [];
    speechSynthesis.cancel();
    if (!cutting) return; // the reply was complete: it is stored whole, only the speaker stops
    this.muted = true;
    if (this.reply) {
      this.reply.querySelector(".body").innerHTML = renderMarkdown(this.streamed.slice(0, this.heard))
        + '<p class="muted">[interrupted: only what was heard is kept]</p>';
      this.reply.classList.remove("streaming");
      this.reply = null;
    }
  }

  frame(frame) {
    if (frame.type === "state") {
      this.serverState = frame.state;
      this.ui.state(LABELS[frame.state] || frame.state);
      if (frame.state === "THINKING") this.turnStarts();
      if (frame.state === "IDLE") this.ui.settled();
    } else if (frame.type === "error") {
      this.ui.error(`Voice: ${frame.message}`);
    } else if (this.muted) {
      // what was already on its way of a reply the user cut
    } else if (frame.type === "response_delta") {
      this.streamed += frame.text;
      this.showReply(renderMarkdown(this.streamed));
    } else if (frame.type === "speak") {
      this.speak(frame.text);
    } else if (frame.type === "response_ready") {
      this.showReply(renderMarkdown(frame.text));
      if (this.reply) this.reply.classList.remove("streaming");
    }
  }

  turnStarts() {
    this.muted = false;
    if (!this.said.el || !this.said.el.isConnected) this.showSaid();
    this.said = {finals: [], partial: "", el: null};
    this.streamed = "";
    this.cursor = 0;
    this.heard = 0;
    this.reply = this.ui.addMessage("assistant", '<span class="muted">thinking…</span>', "streaming");
  }

  showReply(html) {
    if (!this.reply || !this.reply.isConnected) this.reply = this.ui.addMessage("assistant", "", "streaming");
    this.reply.querySelector(".body").innerHTML = html;
    this.reply.scrollIntoView({block: "end"});
  }

  // Speak one sentence; report, word by word, how far into the reply the speaker has got.
  speak(text) {
    let base = this.streamed.indexOf(text, this.cursor);
    if (base < 0) base = this.cursor; // spoken but never streamed (a reply given whole): count on from here
    this.cursor = base + text.length;
    const utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = navigator.language || "en-US";
    const done = () => {
      this.queue = this.queue.filter((u) => u !== utterance);
    };
    utterance.onboundary = (event) => this.played(utterance, base + event.charIndex);
    utterance.onend = () => {
      this.played(utterance, base + text.length);
      done();
    };
    utterance.onerror = done;
    this.queue.push(utterance);
    speechSynthesis.speak(utterance);
  }

  played(utterance, chars) {
    if (utterance.cut || chars <= this.heard) return;
    this.heard = chars;
    this.send({type: "playback", spoken_chars: chars});
  }

  stop(reason = "") {
    if (!this.active) return;
    this.active = false;
    for (const utterance of this.queue) utterance.cut = true;
    this.queue = [];
    speechSynthesis.cancel();
    if (this.recognition) this.recognition.abort();
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "voice mode off");
    if (this.reply) this.reply.classList.remove("streaming");
    this.ui.stopped(reason);
  }
}

/** Wire the Voice toggle. hooks: ensureSession() → the open session (made if none), addMessage(role, html,
 * extraClass) → the bubble, showError(text), settled() (a turn is stored: reload the conversation).
 * Returns {follow(sessionId)}: voice mode ends when another session is opened. */
export function installVoice(hooks) {
  const button = document.getElementById("voice");
  const badge = document.getElementById("voice-state");
  const note = document.getElementById("voice-note");
  const support = voiceSupport();
  let voice = null;
  if (!support.ok) {
    button.disabled = true;
    button.title = support.reason;
    note.textContent = support.reason;
    note.hidden = false;
    return {follow() {}};
  }
  const show = (on) => {
    button.setAttribute("aria-pressed", String(on));
    button.classList.toggle("on", on);
    badge.hidden = !on;
  };
  button.onclick = async () => {
    if (voice) {
      voice.stop();
      return;
    }
    const session = await hooks.ensureSession();
    if (!session || voice) return;
    badge.textContent = "connecting";
    show(true);
    voice = new VoiceSession(session, support.Recognition, {
      addMessage: hooks.addMessage,
      error: hooks.showError,
      settled: hooks.settled,
      state: (label) => {
        badge.textContent = label;
      },
      stopped: (reason) => {
        voice = null;
        show(false);
        if (reason) hooks.showError(reason);
      },
    });
  };
  return {
    follow(sessionId) {
      if (voice && voice.session.id !== sessionId) voice.stop();
    },
  };
}
