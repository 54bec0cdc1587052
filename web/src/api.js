// The engine's HTTP API as a signed-in browser uses it: the session cookie
// rides along by itself; a request that changes something carries the CSRF
// token the sign-in returned (acd/api/_access.py).

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export class Api {
  constructor() {
    this.csrf = sessionStorage.getItem("acd.csrf") || "";
  }

  async request(method, path, body, extra = {}) {
    const headers = { Accept: "application/json", ...extra };
    if (method !== "GET") headers["X-CSRF-Token"] = this.csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    if ((response.headers.get("Content-Type") || "").startsWith("application/json")) {
      data = await response.json();
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  async signIn(username, password) {
    const data = await this.request("POST", "/api/v1/auth/login", { username, password });
    this.csrf = data.csrf_token;
    sessionStorage.setItem("acd.csrf", this.csrf);
    return data.user;
  }

  async signOut() {
    try {
      await this.request("POST", "/api/v1/auth/logout");
    } finally {
      this.csrf = "";
      sessionStorage.removeItem("acd.csrf");
    }
  }

  me() {
    return this.request("GET", "/api/v1/auth/me").then((data) => data.user);
  }

  phone() {
    return this.request("GET", "/api/v1/phone");
  }

  agent(username) {
    return this.request("GET", `/api/v1/agents/${encodeURIComponent(username)}`);
  }

  agentAction(username, action, body) {
    return this.request("POST", `/api/v1/agents/${encodeURIComponent(username)}/${action}`, body);
  }
}
