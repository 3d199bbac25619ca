// The two live sockets: /ws/events (incidents; resumed with ?after=<last id> after a drop)
// and /ws/positions (guards on the map; a fresh snapshot on every connect). Both send the
// token in a first `hello` frame, never in the URL.
import { currentToken } from "./api.js";

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10000;

function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

class ReconnectingSocket {
  constructor(name, { onFrame, onState }) {
    this.name = name;
    this.onFrame = onFrame;
    this.onState = onState;
    this.ws = null;
    this.stopped = false;
    this.delay = RETRY_MIN_MS;
    this.timer = 0;
    this.live = false;
  }

  path() {
    throw new Error("subclass");
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close(1000, "signed out");
    this.ws = null;
  }

  open() {
    const token = currentToken();
    if (!token || this.stopped) return;
    const ws = new WebSocket(socketUrl(this.path()));
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "hello", token }));
    ws.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (!this.live) {
        this.live = true;
        this.delay = RETRY_MIN_MS;
        this.onState(true, frame);
      }
      this.onFrame(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.live) this.onState(false);
      this.live = false;
      if (this.stopped) return;
      this.timer = setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(RETRY_MAX_MS, this.delay * 2);
    };
  }

  send(frame) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  // For the tests and the operator: drop the connection as a network fault would.
  drop() {
    this.ws?.close(4000, "dropped by the console");
  }
}

export class EventStream extends ReconnectingSocket {
  constructor(handlers) {
    super("events", handlers);
    this.lastId = null;
  }

  path() {
    return this.lastId === null ? "/ws/events" : `/ws/events?after=${this.lastId}`;
  }

  // Called by the console for every event frame it has applied.
  seen(frame) {
    if (frame.type === "stream.start" && this.lastId === null) this.lastId = frame.after;
    else if (frame.id !== undefined) this.lastId = frame.id;
  }
}

export class PositionFeed extends ReconnectingSocket {
  constructor(handlers, bbox) {
    super("positions", handlers);
    this.bbox = bbox;
  }

  path() {
    return `/ws/positions?bbox=${this.bbox.map((v) => v.toFixed(5)).join(",")}`;
  }

  setView(bbox) {
    this.bbox = bbox;
    this.send({ type: "bbox", bbox });
  }
}
