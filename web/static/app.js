// ChatScalable browser client: live messages over Server-Sent Events,
// sending over fetch. The page also works without JavaScript (the form
// posts to /publish), so everything here is progressive enhancement.

const room = document.body.dataset.room || "lobby";
const base = "/rooms/" + encodeURIComponent(room);
const USER_KEY = "chat.user";

const list = document.getElementById("messages");
const form = document.getElementById("send-form");
const userInput = document.getElementById("user");
const messageInput = document.getElementById("message");
const statusEl = document.getElementById("status");
const errorEl = document.getElementById("error");

const seen = new Set();
let sending = false;

function setStatus(text) {
  statusEl.textContent = text;
  statusEl.dataset.state = text;
}

function showError(text) {
  errorEl.textContent = text || "";
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

function render(msg) {
  if (msg.id != null) {
    if (seen.has(msg.id)) return;
    seen.add(msg.id);
  }
  const li = document.createElement("li");
  li.appendChild(span("user", msg.user || "anonymous"));
  const time = document.createElement("time");
  const date = new Date(msg.ts);
  if (!Number.isNaN(date.getTime())) {
    time.dateTime = date.toISOString();
    time.textContent = date.toLocaleTimeString();
  }
  li.appendChild(time);
  li.appendChild(span("text", msg.text ?? ""));
  if (msg.node) li.appendChild(span("via", "via " + msg.node));
  list.appendChild(li);
  list.scrollTop = list.scrollHeight;
}

// loadHistory shows the room's last 50 messages and returns the cursor of
// the newest, so the live stream can resume right after it.
async function loadHistory() {
  try {
    const resp = await fetch(base + "/messages?limit=50", { headers: { Accept: "application/json" } });
    if (!resp.ok) return "";
    const page = await resp.json();
    const msgs = Array.isArray(page.messages) ? page.messages : [];
    msgs.forEach(render);
    return msgs.length ? msgs[msgs.length - 1].cursor || "" : "";
  } catch {
    return "";
  }
}

const membersEl = document.getElementById("members");
const roomsEl = document.getElementById("rooms");

// fill replaces a list's items with one per entry, built as text.
function fill(listEl, entries, build) {
  listEl.replaceChildren(...entries.map(build));
}

// loadMembers shows who is in the room; the presence service may be down,
// in which case the list says so.
async function loadMembers() {
  try {
    const resp = await fetch(base + "/members", { headers: { Accept: "application/json" } });
    if (!resp.ok) throw new Error(String(resp.status));
    const body = await resp.json();
    const members = Array.isArray(body.members) ? body.members : [];
    fill(membersEl, members, (m) => {
      const li = document.createElement("li");
      li.textContent = m.user + (m.connections > 1 ? " (" + m.connections + " tabs)" : "");
      return li;
    });
  } catch {
    fill(membersEl, ["(presence unavailable)"], (t) => span("muted", t));
  }
}

// loadRooms shows the rooms directory with message and member counts.
async function loadRooms() {
  try {
    const resp = await fetch("/rooms", { headers: { Accept: "application/json" } });
    if (!resp.ok) throw new Error(String(resp.status));
    const body = await resp.json();
    const rooms = Array.isArray(body.rooms) ? body.rooms : [];
    fill(roomsEl, rooms, (r) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "/?room=" + encodeURIComponent(r.room);
      a.textContent = r.room;
      if (r.room === room) a.setAttribute("aria-current", "page");
      li.appendChild(a);
      const people = typeof r.members === "number" ? ", " + r.members + " here" : "";
      li.appendChild(span("muted", " " + r.messages + " messages" + people));
      if (r.topic) li.appendChild(span("topic", r.topic));
      return li;
    });
  } catch {
    fill(roomsEl, ["(directory unavailable)"], (t) => span("muted", t));
  }
}

function connect(cursor) {
  setStatus("connecting…");
  const params = new URLSearchParams({ user: userInput.value.trim() || "anonymous" });
  if (cursor) params.set("last_event_id", cursor);
  const url = base + "/events?" + params.toString();
  const events = new EventSource(url);
  events.addEventListener("open", () => {
    setStatus("connected");
    loadMembers();
  });
  events.addEventListener("presence", () => loadMembers());
  events.addEventListener("error", () => {
    if (events.readyState === EventSource.CONNECTING) setStatus("reconnecting…");
    else if (events.readyState === EventSource.CLOSED) setStatus("offline");
  });
  // The server could not replay everything missed while disconnected
  // (history was trimmed or recreated, or too much was missed).
  events.addEventListener("reset", () => {
    const li = document.createElement("li");
    li.className = "notice";
    li.textContent = "Some earlier messages are no longer available.";
    list.appendChild(li);
  });
  events.addEventListener("message", (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return; // ignore malformed events
    }
    if (msg && typeof msg === "object") render(msg);
  });
}

async function send() {
  const user = userInput.value.trim();
  const text = messageInput.value;
  if (text.trim() === "") {
    messageInput.focus();
    return;
  }
  try {
    localStorage.setItem(USER_KEY, user);
  } catch {
    // storage may be unavailable (private mode); not fatal
  }
  if (sending) return;
  sending = true;
  let res;
  try {
    res = await fetch(base + "/messages", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ user, text }),
    });
  } catch {
    showError("Could not reach the server; try again.");
    return;
  } finally {
    sending = false;
  }
  if (res.status === 201) {
    messageInput.value = "";
    showError("");
    messageInput.focus();
    return;
  }
  let message = "Sending failed (HTTP " + res.status + ").";
  try {
    const body = await res.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch {
    // not JSON; keep the generic message
  }
  showError(message);
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});

messageInput.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    form.requestSubmit();
  }
});

try {
  const saved = localStorage.getItem(USER_KEY);
  if (saved) userInput.value = saved;
} catch {
  // storage unavailable
}

loadHistory().then(connect);
loadRooms();
setInterval(loadRooms, 15000);
