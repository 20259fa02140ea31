// A scripted microphone and speaker for browser tests (installed with Playwright's add_init_script): headless
// Chromium has neither, so the browser's device APIs are replaced; the page's code and the service are real.
//   SpeechRecognition: window.__say("some words") makes the listening recognizer emit interim results that
//     grow word by word, then the final one, as Chrome's does (continuous, with interim results).
//   speechSynthesis: speaks each utterance a word every __speech.wordMs (a `boundary` event at each word's
//     start, then `end`); cancel() cuts it with an `error`. __speech.spoken records, per utterance it began,
//     {text, spoken: the text up to the last boundary reached (all of it once ended), ended}.
(() => {
  const speech = {wordMs: 25, listening: false, recognitions: 0, spoken: [], cancels: 0, current: null};
  window.__speech = speech;

  class FakeRecognition {
    constructor() {
      Object.assign(this, {continuous: false, interimResults: false, lang: "", results: [], open: null,
        onresult: null, onerror: null, onend: null, onstart: null});
    }

    start() {
      if (speech.current) throw new DOMException("recognition has already started", "InvalidStateError");
      speech.current = this;
      speech.listening = true;
      speech.recognitions += 1;
      setTimeout(() => this.onstart && this.onstart(new Event("start")));
    }

    stop() {
      this.finish();
    }

    abort() {
      this.finish();
    }

    finish() {
      if (speech.current !== this) return;
      speech.current = null;
      speech.listening = false;
      setTimeout(() => this.onend && this.onend(new Event("end")));
    }

    emit(transcript, isFinal) {
      const result = Object.assign([{transcript, confidence: isFinal ? 0.92 : 0}], {isFinal});
      if (this.open === null) {
        this.open = this.results.length;
        this.results.push(result);
      } else {
        this.results[this.open] = result;
      }
      const resultIndex = this.open;
      if (isFinal) this.open = null;
      if (this.onresult) this.onresult({type: "result", resultIndex, results: this.results});
    }
  }

  window.__say = (phrase) => {
    const recognizer = speech.current;
    if (!recognizer) throw new Error("no speech recognition is listening");
    const words = phrase.split(" ");
    for (let n = 1; n < words.length; n++) recognizer.emit(words.slice(0, n).join(" "), false);
    recognizer.emit(phrase, true);
  };

  class FakeUtterance {
    constructor(text = "") {
      Object.assign(this, {text, lang: "", rate: 1, pitch: 1, volume: 1, voice: null,
        onstart: null, onboundary: null, onend: null, onerror: null});
    }
  }

  const synth = {
    queue: [], current: null, timer: null, speaking: false, pending: false, paused: false,
    onvoiceschanged: null,
    speak(utterance) {
      this.queue.push(utterance);
      this.pending = true;
      if (!this.current) this.next();
    },
    cancel() {
      clearTimeout(this.timer);
      const [current, queued] = [this.current, this.queue];
      Object.assign(this, {queue: [], current: null, speaking: false, pending: false});
      if (current) {
        speech.cancels += 1;
        if (current.onerror) current.onerror({type: "error", error: "interrupted", utterance: current});
      }
      for (const u of queued) if (u.onerror) u.onerror({type: "error", error: "canceled", utterance: u});
    },
    next() {
      const utterance = this.queue.shift();
      Object.assign(this, {current: utterance || null, speaking: Boolean(utterance), pending: this.queue.length > 0});
      if (!utterance) return;
      const starts = [...utterance.text.matchAll(/\S+/g)].map((m) => m.index);
      let record = null;
      const step = (i) => {
        if (this.current !== utterance) return; // cancelled
        if (i === 0) {
          record = {text: utterance.text, spoken: "", ended: false};
          speech.spoken.push(record);
          if (utterance.onstart) utterance.onstart({type: "start", utterance});
        }
        if (i < starts.length) {
          record.spoken = utterance.text.slice(0, starts[i]);
          if (utterance.onboundary) utterance.onboundary({type: "boundary", name: "word", charIndex: starts[i], utterance});
          this.timer = setTimeout(() => step(i + 1), speech.wordMs);
        } else {
          Object.assign(record, {spoken: utterance.text, ended: true});
          this.current = null;
          if (utterance.onend) utterance.onend({type: "end", utterance});
          this.next();
        }
      };
      this.timer = setTimeout(() => step(0));
    },
    getVoices() {
      return [];
    },
    pause() {},
    resume() {},
    addEventListener() {},
    removeEventListener() {},
  };

  for (const name of ["SpeechRecognition", "webkitSpeechRecognition"]) {
    Object.defineProperty(window, name, {value: FakeRecognition, configurable: true, writable: true});
  }
  Object.defineProperty(window, "speechSynthesis", {value: synth, configurable: true});
  Object.defineProperty(window, "SpeechSynthesisUtterance", {value: FakeUtterance, configurable: true, writable: true});
})();
