// The engine's live event stream (/api/v1/events/ws, docs/events.md) for a
// page: it reconnects by itself and resumes where it left off (since= and
// epoch=); after a gap (an engine restart, or too long away) it says "gap"
// so the page fetches its state afresh.
//
// Each engine event is dispatched under its type (AgentOffered, ...), with
// the event object as detail; "open", "gap" and "closed" say how the stream is.

export class EventStream extends EventTarget {
  constructor(filters) {
    super();
    this.filters = filters; // {agent, team, queue, types: [...]}
    this.epoch = null;
    this.seq = null;
    this.socket = null;
    this.stopped = false;
    this.delay = 1000;
  }

  url() {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(this.filters)) {
      if (value === undefined || value === null) continue;
      query.set(name, Array.isArray(value) ? value.join(",") : String(value));
    }
    if (this.seq !== null) {
      query.set("since", String(this.seq));
      query.set("epoch", this.epoch);
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/api/v1/events/ws?${query}`;
  }

  start() {
    this.stopped = false;
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.addEventListener("message", (message) => this._message(message.data));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.dispatchEvent(new CustomEvent("closed"));
      if (this.stopped) return;
      setTimeout(() => this.start(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    });
  }

  stop() {
    this.stopped = true;
    if (this.socket) this.socket.close();
    this.socket = null;
  }

  _message(text) {
    let event;
    try {
      event = JSON.parse(text);
    } catch {
      return;
    }
    if (event.type === "hello") {
      this.delay = 1000;
      if (this.epoch !== null && event.epoch !== this.epoch) this.seq = null;
      this.epoch = event.epoch;
      if (this.seq === null) this.seq = event.seq;
      this.dispatchEvent(new CustomEvent("open"));
      return;
    }
    if (event.type === "gap") {
      this.dispatchEvent(new CustomEvent("gap"));
      return;
    }
    if (event.type === "overflow") return; // the engine closes; we resume with since=
    if (typeof event.seq === "number") this.seq = event.seq;
    this.dispatchEvent(new CustomEvent(event.type, { detail: event }));
  }
}
