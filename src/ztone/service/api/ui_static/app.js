// ztone web UI: plain JavaScript, no build step, no third-party code.
// It talks to the daemon's own JSON API with the session cookie; every state-changing
// call carries the session's CSRF token in X-ZTone-CSRF.
"use strict";

const state = { csrf: null, timer: null, view: null };
const POLL_MS = 2000;

// --- helpers -----------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") headers["X-ZTone-CSRF"] = state.csrf || "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    return { ok: false, status: 0, data: null, error: "cannot reach the daemon: " + e.message };
  }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  let error = null;
  if (!response.ok) {
    error = (data && typeof data.error === "string") ? data.error
      : (data && typeof data.description === "string") ? data.description
      : `HTTP ${response.status}`;
    if (response.status === 401) error += " (not logged in: run ztone-cli ui for a new link)";
  }
  return { ok: response.ok, status: response.status, data, error };
}

function announce(text) { document.getElementById("announce").textContent = text; }

function setError(node, text) { node.textContent = text || ""; }

function errorSlot(id) { return el("p", { class: "error", id, role: "alert" }); }

function ago(ms) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return new Date(ms).toLocaleString();
}

function field(id, label, input, hint) {
  input.id = id;
  return el("div", { class: "field" },
    el("label", { for: id, text: label }),
    hint ? el("p", { class: "hint", id: id + "-hint", text: hint }) : null,
    input, errorSlot(id + "-error"));
}

function stopPolling() { if (state.timer) { clearInterval(state.timer); state.timer = null; } }

function mainEl() { return document.getElementById("main"); }

function show(title, ...content) {
  const main = mainEl();
  main.replaceChildren(el("h1", { text: title }), ...content);
  document.title = `${title} - ztone`;
  main.focus();
}

// --- login ---------------------------------------------------------------------------

async function login() {
  const hash = window.location.hash;
  if (hash.startsWith("#login=")) {
    const code = hash.slice("#login=".length);
    // Take the code out of the address bar and this history entry before anything else.
    history.replaceState(null, "", "/app/#/status");
    const r = await api("POST", "/app/session", { code });
    if (r.ok) { state.csrf = r.data.csrf; return true; }
    showLoginError(r.error);
    return false;
  }
  const r = await api("GET", "/app/session");
  if (r.ok) { state.csrf = r.data.csrf; return true; }
  showLoginError(r.error);
  return false;
}

function showLoginError(message) {
  show("Log in",
    el("p", { class: "error", role: "alert", text: message }),
    el("p", {}, "Run ", el("code", { text: "ztone-cli ui" }),
      " on the machine running the daemon and open the link it prints."));
}

// --- node status -----------------------------------------------------------------------

function pathKind(peer) {
  const direct = (peer.paths || []).some((p) => p.preferred || p.active);
  return direct ? "direct" : "relayed";
}

async function viewStatus() {
  const [status, peers, moons] = await Promise.all([
    api("GET", "/status"), api("GET", "/peer"), api("GET", "/moon")]);
  if (!status.ok) { show("Node", errorSlot("status-error")); setError(document.getElementById("status-error"), status.error); return; }
  const s = status.data;
  document.getElementById("node-address").textContent = s.address;
  const facts = el("dl", { class: "facts" },
    el("dt", { text: "Address" }), el("dd", { class: "mono", text: s.address }),
    el("dt", { text: "Version" }), el("dd", { text: s.version }),
    el("dt", { text: "State" }), el("dd", {},
      el("span", { class: "badge " + (s.online ? "ok" : "bad"), id: "node-online",
        text: s.tcpFallbackActive ? "TUNNELED" : (s.online ? "ONLINE" : "OFFLINE") })),
    el("dt", { text: "Planet" }), el("dd", { class: "mono",
      text: `${Number(s.planetWorldId).toString(16).padStart(16, "0")} (timestamp ${s.planetWorldTimestamp})` }),
    el("dt", { text: "Moons" }), el("dd", { class: "mono",
      text: moons.ok && moons.data.length ? moons.data.map((m) => m.id).join(", ") : "none" }));
  const rows = (peers.ok ? peers.data : []).map((p) => {
    const preferred = (p.paths || []).find((x) => x.preferred) || (p.paths || [])[0];
    return el("tr", {},
      el("td", { class: "mono", "data-label": "Address", text: p.address }),
      el("td", { "data-label": "Role", text: p.role }),
      el("td", { "data-label": "Version", text: p.versionMajor < 0 ? "-" : p.version }),
      el("td", { "data-label": "Latency", text: p.latency < 0 ? "-" : `${p.latency} ms` }),
      el("td", { "data-label": "Path", text: pathKind(p) }),
      el("td", { class: "mono", "data-label": "Physical address", text: preferred ? preferred.address : "-" }));
  });
  const table = el("div", { class: "scroll" }, el("table", { class: "stack", id: "peers" },
    el("caption", { class: "visually-hidden", text: "Peers" }),
    el("thead", {}, el("tr", {}, ...["Address", "Role", "Version", "Latency", "Path", "Physical address"]
      .map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows)));
  show("Node", facts, el("h2", { text: `Peers (${rows.length})` }),
    peers.ok ? table : el("p", { class: "error", role: "alert", text: peers.error }));
}

// --- controller networks --------------------------------------------------------------

async function viewNetworks() {
  const ctl = await api("GET", "/controller");
  if (ctl.status === 404) { show("Controller networks", el("p", { text: "This node runs no network controller." })); return; }
  const list = await api("GET", "/unstable/controller/network");
  const nameInput = el("input", { type: "text", name: "name", autocomplete: "off" });
  const formError = errorSlot("create-error");
  const form = el("form", { class: "card", id: "create-network", "aria-labelledby": "create-title" },
    el("h2", { id: "create-title", text: "Create a network" }),
    field("new-network-name", "Name", nameInput),
    el("button", { type: "submit", class: "primary", text: "Create network" }), formError);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const r = await api("POST", "/controller/network", { name: nameInput.value });
    if (!r.ok) { setError(document.getElementById("new-network-name-error"), r.error); nameInput.focus(); return; }
    announce(`Network ${r.data.id} created`);
    window.location.hash = `#/network/${r.data.id}`;
  });
  let body;
  if (!list.ok) {
    body = el("p", { class: "error", role: "alert", text: list.error });
  } else if (!list.data.data.length) {
    body = el("p", { text: "No networks yet." });
  } else {
    body = el("div", { class: "scroll" }, el("table", { class: "stack", id: "networks" },
      el("caption", { class: "visually-hidden", text: "Networks of this controller" }),
      el("thead", {}, el("tr", {}, ...["Network", "Name", "Access", "Members (authorized)"]
        .map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, list.data.data.map((n) => el("tr", {},
        el("td", { class: "mono", "data-label": "Network" }, el("a", { href: `#/network/${n.id}`, text: n.id })),
        el("td", { "data-label": "Name", text: n.name || "" }),
        el("td", { "data-label": "Access", text: n.private === false ? "public" : "private" }),
        el("td", { "data-label": "Members", text: `${n.meta.totalMemberCount} (${n.meta.authorizedMemberCount})` }))))));
  }
  show("Controller networks", body, form);
}

// The first key an API validation message names ("ipAssignmentPools[0].ipRangeStart: ...").
function keyOf(message) {
  const m = /^([A-Za-z0-9]+)/.exec(message || "");
  return m ? m[1] : null;
}

const SETTINGS_KEYS = {
  name: "net-name", private: "net-private", mtu: "net-mtu", multicastLimit: "net-mclimit",
  enableBroadcast: "net-broadcast", v4AssignMode: "net-v4", v6AssignMode: "net-v6",
  ipAssignmentPools: "net-pools", routes: "net-routes", dns: "net-dns-domain",
};

function poolsText(pools) {
  return (pools || []).map((p) => `${p.ipRangeStart} - ${p.ipRangeEnd}`).join("\n");
}
function parsePools(text) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
    const [start, end] = line.split(/\s*-\s*|\s+/);
    return { ipRangeStart: start || "", ipRangeEnd: end || start || "" };
  });
}
function routesText(routes) {
  return (routes || []).map((r) => r.via ? `${r.target} via ${r.via}` : r.target).join("\n");
}
function parseRoutes(text) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
    const [target, via] = line.split(/\s+via\s+/);
    return { target: target.trim(), via: via ? via.trim() : null };
  });
}
function listText(values) { return (values || []).join(", "); }
function parseList(text) { return text.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean); }

function checkbox(id, label, checked) {
  return el("label", { for: id }, el("input", { type: "checkbox", id, checked: !!checked }), " " + label);
}

function settingsForm(net) {
  const v6 = net.v6AssignMode || {};
  const form = el("form", { class: "card", id: "network-settings", "aria-labelledby": "settings-title" },
    el("h2", { id: "settings-title", text: "Settings" }),
    field("net-name", "Name", el("input", { type: "text", value: net.name || "" })),
    el("div", { class: "field" }, checkbox("net-private", "Private (members must be authorized)", net.private !== false),
      errorSlot("net-private-error")),
    el("fieldset", { class: "field" }, el("legend", { text: "IPv4 assignment" }),
      checkbox("net-v4", "Assign from the pools (zt)", (net.v4AssignMode || {}).zt), errorSlot("net-v4-error")),
    el("fieldset", { class: "field" }, el("legend", { text: "IPv6 assignment" }),
      checkbox("net-v6-zt", "From the pools (zt)", v6.zt),
      checkbox("net-v6-rfc4193", "RFC 4193", v6.rfc4193),
      checkbox("net-v6-6plane", "6PLANE", v6["6plane"]), errorSlot("net-v6-error")),
    field("net-pools", "IP assignment pools", el("textarea", { "aria-describedby": "net-pools-hint", rows: 3 },
      poolsText(net.ipAssignmentPools)), "One range per line: first - last"),
    field("net-routes", "Managed routes", el("textarea", { "aria-describedby": "net-routes-hint", rows: 3 },
      routesText(net.routes)), "One per line: 10.0.0.0/24, or 0.0.0.0/0 via 10.0.0.1"),
    field("net-dns-domain", "DNS search domain", el("input", { type: "text", value: (net.dns || {}).domain || "" })),
    field("net-dns-servers", "DNS servers", el("input", { type: "text", "aria-describedby": "net-dns-servers-hint",
      value: listText((net.dns || {}).servers) }), "Comma-separated addresses"),
    field("net-mtu", "MTU", el("input", { type: "number", value: net.mtu, min: 1280, max: 10000 })),
    field("net-mclimit", "Multicast recipient limit", el("input", { type: "number", value: net.multicastLimit, min: 0 })),
    el("div", { class: "field" }, checkbox("net-broadcast", "Enable broadcast (ff:ff:ff:ff:ff:ff)", net.enableBroadcast),
      errorSlot("net-broadcast-error")),
    el("button", { type: "submit", class: "primary", text: "Save settings" }), errorSlot("settings-error"),
    el("p", { class: "ok", role: "status", id: "settings-saved" }));
  const value = (id) => document.getElementById(id).value;
  const checked = (id) => document.getElementById(id).checked;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    form.querySelectorAll(".error").forEach((n) => setError(n, ""));
    document.getElementById("settings-saved").textContent = "";
    const body = {
      name: value("net-name"), private: checked("net-private"),
      v4AssignMode: { zt: checked("net-v4") },
      v6AssignMode: { zt: checked("net-v6-zt"), rfc4193: checked("net-v6-rfc4193"), "6plane": checked("net-v6-6plane") },
      ipAssignmentPools: parsePools(value("net-pools")), routes: parseRoutes(value("net-routes")),
      dns: { domain: value("net-dns-domain"), servers: parseList(value("net-dns-servers")) },
      mtu: value("net-mtu"), multicastLimit: value("net-mclimit"), enableBroadcast: checked("net-broadcast"),
    };
    for (const k of ["mtu", "multicastLimit"]) if (/^\d+$/.test(body[k])) body[k] = Number(body[k]);
    if (!body.dns.domain && !body.dns.servers.length) body.dns = [];
    const r = await api("POST", `/controller/network/${net.id}`, body);
    if (!r.ok) {
      const id = SETTINGS_KEYS[keyOf(r.error)];
      const slot = document.getElementById((id || "settings") + "-error");
      setError(slot, r.error);
      const target = id && document.getElementById(id);
      if (target) target.focus();
      return;
    }
    announce("Settings saved");
    setError(document.getElementById("settings-error"), "");
    document.getElementById("settings-saved").textContent = `Saved at ${new Date().toLocaleTimeString()}.`;
  });
  return form;
}

function rulesForm(net) {
  const area = el("textarea", { class: "rules", spellcheck: "false", "aria-describedby": "net-rules-hint" },
    JSON.stringify(net.rules || [], null, 2));
  const form = el("form", { class: "card", id: "network-rules", "aria-labelledby": "rules-title" },
    el("h2", { id: "rules-title", text: "Rules (JSON)" }),
    field("net-rules", "Rules", area, "The network's rules as a JSON array, checked by the controller."),
    el("button", { type: "submit", class: "primary", text: "Save rules" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const slot = document.getElementById("net-rules-error");
    let rules;
    try { rules = JSON.parse(area.value); } catch (e) { setError(slot, "not JSON: " + e.message); area.focus(); return; }
    const r = await api("POST", `/controller/network/${net.id}`, { rules });
    if (!r.ok) { setError(slot, r.error); area.focus(); return; }
    setError(slot, "");
    area.value = JSON.stringify(r.data.rules, null, 2);
    announce("Rules saved");
  });
  return form;
}

function memberRow(nwid, id) {
  const nameInput = el("input", { type: "text", id: `m-${id}-name`, "aria-label": `Name of member ${id}` });
  const ipsInput = el("input", { type: "text", id: `m-${id}-ips`, "aria-label": `IP assignments of member ${id}` });
  const authButton = el("button", { type: "button", id: `m-${id}-auth` });
  const error = errorSlot(`m-${id}-error`);
  const post = async (body, focus) => {
    const r = await api("POST", `/controller/network/${nwid}/member/${id}`, body);
    setError(error, r.ok ? "" : r.error);
    if (!r.ok) { focus.focus(); return; }
    announce(`Member ${id} saved`);
    refreshMembers(nwid);
  };
  authButton.addEventListener("click", () => post({ authorized: authButton.dataset.authorized !== "true" }, authButton));
  const saveName = el("button", { type: "button", text: "Save", "aria-label": `Save name of ${id}`,
    onclick: () => post({ name: nameInput.value }, nameInput) });
  const saveIps = el("button", { type: "button", text: "Save", "aria-label": `Save IP assignments of ${id}`,
    onclick: () => post({ ipAssignments: parseList(ipsInput.value) }, ipsInput) });
  const del = el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete member ${id}`,
    onclick: async () => {
      if (!window.confirm(`Delete member ${id} from this network?`)) return;
      const r = await api("DELETE", `/controller/network/${nwid}/member/${id}`);
      setError(error, r.ok ? "" : r.error);
      if (r.ok) { announce(`Member ${id} deleted`); refreshMembers(nwid); }
    } });
  const cells = {
    status: el("td", { "data-label": "Status" }), seen: el("td", { "data-label": "Last seen" }),
    physical: el("td", { class: "mono", "data-label": "Physical address" }),
    version: el("td", { "data-label": "Version" }),
  };
  const row = el("tr", { id: `member-${id}` },
    el("th", { scope: "row", class: "mono", "data-label": "Member", text: id }),
    el("td", { "data-label": "Name" }, el("div", { class: "inline" }, nameInput, saveName)),
    el("td", { "data-label": "Authorized" }, authButton),
    el("td", { "data-label": "IP assignments" }, el("div", { class: "inline" }, ipsInput, saveIps)),
    cells.status, cells.seen, cells.physical, cells.version,
    el("td", { "data-label": "Actions" }, del, error));
  row.update = (m, live) => {
    if (document.activeElement !== nameInput) nameInput.value = m.name || "";
    if (document.activeElement !== ipsInput) ipsInput.value = listText(m.ipAssignments);
    authButton.dataset.authorized = m.authorized ? "true" : "false";
    authButton.textContent = m.authorized ? "Deauthorize" : "Authorize";
    authButton.setAttribute("aria-label", `${m.authorized ? "Deauthorize" : "Authorize"} member ${id}`);
    authButton.className = m.authorized ? "danger" : "primary";
    const online = !!live && Date.now() - live.lastSeen < 120000;
    cells.status.textContent = `${m.authorized ? "authorized" : "unauthorized"}, ${online ? "online" : "offline"}`;
    cells.status.className = m.authorized ? "ok" : "bad";
    cells.seen.textContent = live ? ago(live.lastSeen) : "not recently";
    cells.physical.textContent = live && live.physicalAddress ? live.physicalAddress : "-";
    cells.version.textContent = m.vMajor >= 0 ? `${m.vMajor}.${m.vMinor}.${m.vRev}` : "-";
  };
  return row;
}

async function refreshMembers(nwid) {
  const tbody = document.getElementById("members-body");
  if (!tbody) return;
  const [list, live] = await Promise.all([
    api("GET", `/unstable/controller/network/${nwid}/member`), api("GET", `/ui/member-status/${nwid}`)]);
  const slot = document.getElementById("members-error");
  if (!list.ok) { setError(slot, list.error); return; }
  setError(slot, "");
  const seen = live.ok ? live.data : {};
  const ids = new Set();
  for (const m of list.data.data) {
    ids.add(m.id);
    let row = document.getElementById(`member-${m.id}`);
    if (!row) { row = memberRow(nwid, m.id); tbody.append(row); }
    row.update(m, seen[m.id]);
  }
  for (const row of [...tbody.children]) if (!ids.has(row.id.slice("member-".length))) row.remove();
  document.getElementById("members-count").textContent = `${list.data.meta.totalCount} (${list.data.meta.authorizedCount} authorized)`;
  const empty = document.getElementById("members-empty");
  empty.hidden = list.data.data.length > 0;
}

async function viewNetwork(nwid) {
  const r = await api("GET", `/controller/network/${nwid}`);
  if (!r.ok) {
    show(`Network ${nwid}`, el("p", { class: "error", role: "alert",
      text: r.status === 404 ? "This controller has no such network." : r.error }));
    return;
  }
  const net = r.data;
  const members = el("section", { "aria-labelledby": "members-title" },
    el("h2", { id: "members-title" }, "Members ", el("span", { id: "members-count", class: "muted" })),
    errorSlot("members-error"),
    el("p", { id: "members-empty", text: "No member has asked to join yet." }),
    el("div", { class: "scroll" }, el("table", { class: "stack", id: "members" },
      el("thead", {}, el("tr", {}, ...["Member", "Name", "Authorized", "IP assignments", "Status",
        "Last seen", "Physical address", "Version", "Actions"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", { id: "members-body" }))));
  const delError = errorSlot("delete-network-error");
  const del = el("section", { class: "card", "aria-labelledby": "delete-title" },
    el("h2", { id: "delete-title", text: "Delete" }),
    el("button", { type: "button", class: "danger", id: "delete-network", text: "Delete this network",
      onclick: async () => {
        if (!window.confirm(`Delete network ${nwid} and all its members? This cannot be undone.`)) return;
        const d = await api("DELETE", `/controller/network/${nwid}`);
        if (!d.ok) { setError(delError, d.error); return; }
        announce(`Network ${nwid} deleted`);
        window.location.hash = "#/networks";
      } }), delError);
  show(`Network ${net.name || nwid}`,
    el("p", { class: "mono", id: "network-id", text: nwid }),
    members, settingsForm(net), rulesForm(net), del);
  await refreshMembers(nwid);
  state.timer = setInterval(() => refreshMembers(nwid), POLL_MS);
}

// --- joined networks ------------------------------------------------------------------

async function viewJoined() {
  const r = await api("GET", "/network");
  const input = el("input", { type: "text", autocomplete: "off", pattern: "[0-9a-fA-F]{16}",
    "aria-describedby": "join-id-hint" });
  const form = el("form", { class: "card", id: "join-network", "aria-labelledby": "join-title", novalidate: true },
    el("h2", { id: "join-title", text: "Join a network" }),
    field("join-id", "Network ID", input, "16 hexadecimal digits"),
    el("button", { type: "submit", class: "primary", text: "Join" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const slot = document.getElementById("join-id-error");
    const id = input.value.trim();
    if (!/^[0-9a-fA-F]{16}$/.test(id)) { setError(slot, "a network ID is 16 hexadecimal digits"); input.focus(); return; }
    const j = await api("POST", `/network/${id}`, {});
    if (!j.ok) { setError(slot, j.error); input.focus(); return; }
    announce(`Joined ${id}`);
    route();
  });
  let body;
  if (!r.ok) body = el("p", { class: "error", role: "alert", text: r.error });
  else if (!r.data.length) body = el("p", { text: "This node has joined no network." });
  else body = el("div", { class: "scroll" }, el("table", { class: "stack", id: "joined" },
    el("thead", {}, el("tr", {}, ...["Network", "Name", "Status", "Addresses", "Device", "Actions"]
      .map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, r.data.map((n) => {
      const error = errorSlot(`leave-${n.id}-error`);
      return el("tr", {},
        el("th", { scope: "row", class: "mono", "data-label": "Network", text: n.id }),
        el("td", { "data-label": "Name", text: n.name }),
        el("td", { "data-label": "Status", text: n.status }),
        el("td", { class: "mono", "data-label": "Addresses", text: n.assignedAddresses.join(", ") || "-" }),
        el("td", { "data-label": "Device", text: n.portDeviceName || "-" }),
        el("td", { "data-label": "Actions" }, el("button", { type: "button", class: "danger", text: "Leave",
          "aria-label": `Leave network ${n.id}`, onclick: async () => {
            if (!window.confirm(`Leave network ${n.id}?`)) return;
            const l = await api("DELETE", `/network/${n.id}`);
            if (!l.ok) { setError(error, l.error); return; }
            announce(`Left ${n.id}`);
            route();
          } }), error));
    }))));
  show("Joined networks", body, form);
}

// --- routing ---------------------------------------------------------------------------

async function route() {
  stopPolling();
  const hash = window.location.hash || "#/status";
  let view = "status";
  if (hash.startsWith("#/networks")) view = "networks";
  else if (hash.startsWith("#/network/")) view = "networks";
  else if (hash.startsWith("#/joined")) view = "joined";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const m = /^#\/network\/([0-9a-fA-F]{16})$/.exec(hash);
  if (m) await viewNetwork(m[1].toLowerCase());
  else if (view === "networks") await viewNetworks();
  else if (view === "joined") await viewJoined();
  else await viewStatus();
}

async function start() {
  if (!(await login())) return;
  const logout = document.getElementById("logout");
  logout.hidden = false;
  logout.addEventListener("click", async () => {
    await api("DELETE", "/app/session");
    state.csrf = null;
    stopPolling();
    showLoginError("Logged out.");
    logout.hidden = true;
  });
  window.addEventListener("hashchange", route);
  const s = await api("GET", "/status");
  if (s.ok) document.getElementById("node-address").textContent = s.data.address;
  await route();
}

document.addEventListener("DOMContentLoaded", start);
