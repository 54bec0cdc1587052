// The browser phone: JsSIP over the engine's SIP WebSocket, WebRTC audio.
//
// One registration, at most one call at a time (an agent's phone). The page
// (or the agent desktop) listens for the events below and calls the methods;
// nothing here touches the DOM except the <audio> element it is handed.
//
// Events (EventTarget, detail in event.detail):
//   state     {state: "connecting" | "registered" | "unregistered" | "failed" | "offline", cause}
//   incoming  {from, display, callId}
//   call      {state: "ringing" | "calling" | "talking" | "held" | "ended", cause}

import JsSIP from "jssip";

const MEDIA = { audio: true, video: false };
// The engine is ICE-lite on a reachable address: no STUN or TURN needed.
const PC_CONFIG = { iceServers: [], rtcpMuxPolicy: "require" };

export class SipPhone extends EventTarget {
  constructor(settings, audio) {
    super();
    this.settings = settings;
    this.audio = audio;
    this.session = null;
    this.muted = false;
    this.held = false;
    const socket = new JsSIP.WebSocketInterface(settings.websocket_url);
    this.ua = new JsSIP.UA({
      sockets: [socket],
      uri: settings.uri,
      authorization_user: settings.authorization_user,
      password: settings.password,
      realm: settings.realm,
      display_name: settings.display_name || undefined,
      register: true,
      register_expires: settings.register_expires || 300,
      session_timers: false,
      user_agent: "acd-phone (JsSIP)",
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 30,
    });
    this.ua.on("connecting", () => this._state("connecting"));
    this.ua.on("registered", () => this._state("registered"));
    this.ua.on("unregistered", () => this._state("unregistered"));
    this.ua.on("disconnected", () => {
      this._state("offline");
      // The engine ends a call whose WebSocket closed: end ours too, rather
      // than show a call nobody is on. JsSIP reconnects and registers again.
      if (this.session) this.session.terminate();
    });
    this.ua.on("registrationFailed", (e) => this._state("failed", e.cause));
    this.ua.on("newRTCSession", (e) => this._newSession(e));
  }

  start() {
    this.ua.start();
  }

  stop() {
    if (this.session) this.session.terminate();
    this.ua.stop();
  }

  get inCall() {
    return this.session !== null;
  }

  answer() {
    if (!this.session || this.session.direction !== "incoming") return;
    this.session.answer({ mediaConstraints: MEDIA, pcConfig: PC_CONFIG });
  }

  call(target) {
    if (this.session) throw new Error("already in a call");
    const uri = target.includes("@") ? target : `sip:${target}@${this.settings.domain}`;
    this.ua.call(uri, { mediaConstraints: MEDIA, pcConfig: PC_CONFIG });
  }

  // Blind transfer (REFER): the caller goes to target and this call ends.
  transfer(target) {
    if (!this.session || !this.session.isEstablished()) return;
    const uri = target.includes("@") ? target : `sip:${target}@${this.settings.domain}`;
    this.session.refer(uri);
  }

  hangup() {
    if (this.session) this.session.terminate();
  }

  toggleHold() {
    if (!this.session) return;
    if (this.held) this.session.unhold();
    else this.session.hold();
  }

  toggleMute() {
    if (!this.session) return;
    if (this.muted) this.session.unmute({ audio: true });
    else this.session.mute({ audio: true });
  }

  // RFC 4733 telephone-events in the media by default; SIP INFO when asked.
  sendDtmf(key, transport = "RFC2833") {
    if (!this.session || !this.session.isEstablished()) return;
    this.session.sendDTMF(key, { transportType: transport, duration: 120, interToneGap: 80 });
  }

  _state(state, cause) {
    this.dispatchEvent(new CustomEvent("state", { detail: { state, cause } }));
  }

  _call(state, cause) {
    this.dispatchEvent(new CustomEvent("call", { detail: { state, cause } }));
  }

  _newSession(e) {
    const session = e.session;
    if (this.session) {
      // One call at a time: a second offer while busy is refused at once.
      if (e.originator === "remote") session.terminate({ status_code: 486 });
      return;
    }
    this.session = session;
    this.muted = false;
    this.held = false;
    session.on("peerconnection", (ev) => this._attach(ev.peerconnection));
    if (session.connection) this._attach(session.connection);
    session.on("confirmed", () => this._call("talking"));
    session.on("hold", (ev) => {
      if (ev.originator === "local") {
        this.held = true;
        this._call("held");
      }
    });
    session.on("unhold", (ev) => {
      if (ev.originator === "local") {
        this.held = false;
        this._call("talking");
      }
    });
    session.on("muted", () => { this.muted = true; this._call(this.held ? "held" : "talking"); });
    session.on("unmuted", () => { this.muted = false; this._call(this.held ? "held" : "talking"); });
    const finished = (ev) => {
      if (this.session !== session) return;
      this.session = null;
      this.audio.srcObject = null;
      this._call("ended", ev.cause);
    };
    session.on("ended", finished);
    session.on("failed", finished);
    if (e.originator === "remote") {
      const from = e.request.from;
      this.dispatchEvent(
        new CustomEvent("incoming", {
          detail: { from: from.uri.user, display: from.display_name || "", callId: e.request.call_id },
        }),
      );
      this._call("ringing");
    } else {
      this._call("calling");
    }
  }

  _attach(pc) {
    pc.addEventListener("track", (ev) => {
      const [stream] = ev.streams;
      this.audio.srcObject = stream || new MediaStream([ev.track]);
    });
  }
}
