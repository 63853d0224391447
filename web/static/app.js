// ChatScalable browser client: history over fetch, live messages and
// presence over Server-Sent Events, sending over fetch. The page also works
// without JavaScript (the form posts to /publish and the room form is a GET
// to /), so everything here is progressive enhancement.
//
// User-supplied text (names, messages, topics) only ever reaches the page
// through textContent. Tokens, when the gateway requires them, are auth.js's.

import { AUTH_ON, authFetch, authProblem, onUserChange, refresh, requestError, signIn, streamURL, tokenInURL, whenFresh } from "./auth.js";

const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
// The server's control characters: C0, DEL, C1 and the line/paragraph separators.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// The gateway's --max-message-bytes, from the page it served.
const MAX_TEXT_BYTES = Number(document.body.dataset.maxMessageBytes) || 4096;
const MAX_NICK_CHARS = 64;
const PAGE_SIZE = 50;
const USER_KEY = "chat.user";
const ANONYMOUS = "anonymous";
const ROOMS_EVERY_MS = 15000;
const REFETCH_DELAY_MS = 250; // members and rooms after presence events, coalesced
const REQUEST_TIMEOUT_MS = 15000;
const GROUP_WITHIN_MS = 5 * 60 * 1000;

const NETWORK_ERROR = "Could not reach the server; check your connection.";
const UNAVAILABLE = "The chat server can't store messages right now; try again in a moment.";
const RESET_NOTICE = "Some earlier messages are no longer available.";

const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();

const room = ROOM_RE.test(document.body.dataset.room || "") ? document.body.dataset.room : "lobby";
const base = "/rooms/" + encodeURIComponent(room);

// ---------------------------------------------------------------------------
// Small helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function storageGet(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage may be unavailable (private mode, policy)
  }
}

function storageSet(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // not fatal: the name just is not remembered
  }
}

function plural(n, one, many) {
  return n + " " + (n === 1 ? one : many);
}

// getJSON fetches url and returns its JSON body; it throws on a network
// failure, a timeout or a status other than 2xx.
async function getJSON(url) {
  const resp = await authFetch(url, {
    headers: { Accept: "application/json" },
    cache: "no-store",
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  if (!resp.ok) throw await requestError(resp);
  return resp.json();
}

function randomKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function firstControl(text) {
  const m = CONTROL_RE.exec(text);
  return m ? m[0] : "";
}

function codepoint(ch) {
  return "U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
}

// ---------------------------------------------------------------------------
// Validation, the same rules as the server's

function validateRoom(name) {
  if (name === "") return "Enter a room name.";
  if (name.length > 64) return "Room names are at most 64 characters; this one has " + name.length + ".";
  if (!ROOM_RE.test(name)) {
    const bad = [...name].find((c) => !/[A-Za-z0-9_-]/.test(c)) || "";
    const shown = bad === " " ? "A space" : /\s/.test(bad) || CONTROL_RE.test(bad) ? codepoint(bad) : "“" + bad + "”";
    return shown + " is not allowed in a room name: use only letters A–Z, digits, “_” and “-”.";
  }
  return "";
}

function validateNick(name) {
  if (name.trim() === "") return "Enter a name, or choose “Cancel”.";
  const n = [...name].length;
  if (n > MAX_NICK_CHARS) return "Names are at most " + MAX_NICK_CHARS + " characters; this one has " + n + ".";
  const bad = firstControl(name);
  if (bad) return "Names cannot contain control characters (" + codepoint(bad) + ").";
  return "";
}

function textBytes(text) {
  return encoder.encode(text).length;
}

// ---------------------------------------------------------------------------
// The room is in the URL: /?room=dev; a hash (/#dev) opens that room too.

function roomFromHash() {
  let h = location.hash.slice(1);
  try {
    h = decodeURIComponent(h);
  } catch {
    return "";
  }
  return ROOM_RE.test(h) ? h : "";
}

// followHash navigates to the room named by the hash; it reports whether
// it did (the page is then going away).
function followHash() {
  const target = roomFromHash();
  if (target && target !== room) {
    location.replace("/?room=" + encodeURIComponent(target));
    return true;
  }
  return false;
}

function reflectRoomInURL() {
  const want = "/?room=" + encodeURIComponent(room);
  if (location.pathname + location.search !== want || location.hash) {
    try {
      history.replaceState(history.state, "", want);
    } catch {
      // not fatal
    }
  }
}

// ---------------------------------------------------------------------------
// Elements

const list = $("messages");
const form = $("send-form");
const userInput = $("user");
const messageInput = $("message");
const sendButton = $("send");
const errorEl = $("error");
const countEl = $("message-count");
const statusEl = $("status");
const historyEl = $("history-status");
const newMessagesButton = $("new-messages");
const announcer = $("announcer");
const nickCurrent = $("nick-current");
const nickDialog = $("nick-dialog");
const nickForm = $("nick-form");
const nickInput = $("nick-input");
const nickError = $("nick-error");
const nickCancel = $("nick-cancel");
const nickChange = $("nick-change");
const meLabel = document.querySelector("#me .me-label");
const membersEl = $("members");
const memberCount = $("member-count");
const roomsEl = $("rooms");
const roomForm = $("room-form");
const roomInput = $("room-input");
const roomError = $("room-error");
const side = $("side");
const sideToggle = $("side-toggle");

// ---------------------------------------------------------------------------
// State

let nick = ""; // empty until chosen (or the dialog dismissed): the page only reads

const seen = new Set(); // message ids shown
const meta = new WeakMap(); // li → { user, ms }: for grouping and "own"
let stickToBottom = true; // follow new messages unless the reader scrolled up
let lastSentAt = 0;
let unread = 0;

let oldestCursor = ""; // of the oldest message loaded, for paging back
let lastCursor = ""; // of the newest message seen, to resume the stream
let historyReady = false;
let historyEnd = false;
let loadingOlder = false;

let source = null; // the current EventSource
let everOpened = false;
let retryTimer = 0;
let retryDelay = 1000;

let sending = false;
let pending = null; // { text, key }: a retry of the same text reuses its key
let errorKind = "";

// ---------------------------------------------------------------------------
// Connection status

function computeState() {
  if (navigator.onLine === false) return "offline";
  if (!source) return everOpened ? "offline" : "connecting";
  switch (source.readyState) {
    case EventSource.OPEN:
      return "connected";
    case EventSource.CONNECTING:
      return everOpened || retryDelay > 1000 ? "reconnecting" : "connecting";
    default:
      return "offline";
  }
}

function updateState() {
  const state = computeState();
  if (statusEl.dataset.state !== state || statusEl.textContent !== STATUS_TEXT[state]) {
    statusEl.dataset.state = state;
    statusEl.textContent = STATUS_TEXT[state];
  }
  if (errorKind === "state" && !sendBlocked()) showError("");
  updateSendButton();
}

function sendBlocked() {
  const state = statusEl.dataset.state;
  return state === "offline" || state === "reconnecting";
}

function updateSendButton() {
  sendButton.disabled = sending || sendBlocked();
}

// ---------------------------------------------------------------------------
// Messages

function atBottom() {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}

function scrollToBottom() {
  list.scrollTop = list.scrollHeight;
  stickToBottom = true;
  newMessagesButton.hidden = true;
}

function timeElement(ts) {
  const time = document.createElement("time");
  const date = new Date(ts);
  if (Number.isNaN(date.getTime())) return { time, ms: NaN };
  time.dateTime = date.toISOString();
  const now = new Date();
  const clock = date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  if (date.toDateString() === now.toDateString()) {
    time.textContent = clock;
  } else {
    const opts = { month: "short", day: "numeric" };
    if (date.getFullYear() !== now.getFullYear()) opts.year = "numeric";
    time.textContent = date.toLocaleDateString(undefined, opts) + ", " + clock;
  }
  time.title = date.toLocaleString();
  return { time, ms: date.getTime() };
}

function validMessage(msg) {
  return msg && typeof msg === "object" && typeof msg.text === "string";
}

function buildMessage(msg) {
  const li = el("li", "message");
  const user = typeof msg.user === "string" && msg.user !== "" ? msg.user : ANONYMOUS;
  li.dataset.id = msg.id == null ? "" : String(msg.id);
  li.dataset.seq = msg.seq == null ? "" : String(msg.seq);
  const { time, ms } = timeElement(msg.ts);
  li.append(el("span", "user", user), time);
  if (typeof msg.node === "string" && msg.node) li.append(el("span", "via", "via " + msg.node));
  li.append(el("div", "text", msg.text));
  if (user === nick) li.classList.add("own");
  meta.set(li, { user, ms });
  return li;
}

// groupWithPrevious marks li "continued" when it follows a message of the
// same user within a few minutes, so the name is not repeated visually.
function groupWithPrevious(li) {
  if (!li || !li.classList.contains("message")) return;
  const prev = li.previousElementSibling;
  const a = prev && meta.get(prev);
  const b = meta.get(li);
  const continued = Boolean(a && b && a.user === b.user && Math.abs(b.ms - a.ms) < GROUP_WITHIN_MS);
  li.classList.toggle("continued", continued);
}

function refreshOwn() {
  for (const li of list.querySelectorAll("li.message")) {
    const m = meta.get(li);
    li.classList.toggle("own", Boolean(m && m.user === nick));
  }
}

function announce(text) {
  announcer.textContent = text.length > 200 ? text.slice(0, 200) + "…" : text;
}

function updateTitle() {
  document.title = (unread ? "(" + unread + ") " : "") + "#" + room + " · ChatScalable";
}

// addLive appends a message from the live stream.
function addLive(msg) {
  if (!validMessage(msg)) return;
  if (msg.id != null) {
    if (seen.has(String(msg.id))) return;
    seen.add(String(msg.id));
  }
  const li = buildMessage(msg);
  list.append(li);
  groupWithPrevious(li);
  showRooms(); // the room's message count moves with the message
  const own = li.classList.contains("own");
  if (stickToBottom || (own && Date.now() - lastSentAt < 10000)) {
    scrollToBottom();
  } else {
    newMessagesButton.hidden = false;
  }
  if (!own) {
    announce(meta.get(li).user + ": " + msg.text);
    if (document.hidden) {
      unread++;
      updateTitle();
    }
  }
}

function addNotice(text) {
  const li = el("li", "notice", text);
  list.append(li);
  if (stickToBottom) scrollToBottom();
  else newMessagesButton.hidden = false;
}

// prependHistory adds older messages (oldest first) above those shown,
// keeping what the reader sees in place.
function prependHistory(msgs) {
  const frag = document.createDocumentFragment();
  const added = [];
  for (const msg of msgs) {
    if (!validMessage(msg)) continue;
    if (msg.id != null) {
      if (seen.has(String(msg.id))) continue;
      seen.add(String(msg.id));
    }
    const li = buildMessage(msg);
    frag.append(li);
    added.push(li);
  }
  if (!added.length) return;
  const oldFirst = list.firstElementChild;
  const prevHeight = list.scrollHeight;
  const prevTop = list.scrollTop;
  list.insertBefore(frag, oldFirst);
  for (const li of added) groupWithPrevious(li);
  groupWithPrevious(oldFirst);
  list.scrollTop = prevTop + (list.scrollHeight - prevHeight);
  showRooms();
}

// ---------------------------------------------------------------------------
// History

function setHistory(state, text) {
  historyEl.dataset.state = state;
  historyEl.textContent = text;
  historyEl.hidden = false;
}

async function fetchPage(before) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (before) params.set("before", before);
  const body = await getJSON(base + "/messages?" + params.toString());
  return Array.isArray(body.messages) ? body.messages : [];
}

// loadLatest shows the room's newest messages and remembers the newest
// cursor, so the live stream resumes right after it.
async function loadLatest() {
  setHistory("loading", "Loading messages…");
  try {
    const msgs = await fetchPage("");
    prependHistory(msgs);
    if (msgs.length) {
      oldestCursor = msgs[0].cursor || "";
      lastCursor = msgs[msgs.length - 1].cursor || "";
      setHistory("idle", "Scroll up for older messages");
    } else {
      historyEnd = true;
      setHistory("end", "Beginning of the room");
    }
    historyReady = true;
    scrollToBottom();
    requestAnimationFrame(() => {
      scrollToBottom();
      fillIfShort();
    });
  } catch (err) {
    historyReady = true;
    setHistory("error", (err && err.text) || "Could not load the messages; scroll up to try again.");
  }
}

// loadOlder prepends the page before the oldest message shown; an empty
// page means the beginning of the room.
async function loadOlder() {
  if (!historyReady || loadingOlder || historyEnd) return;
  loadingOlder = true;
  setHistory("loading", "Loading older messages…");
  let ok = false;
  try {
    const msgs = await fetchPage(oldestCursor);
    if (!msgs.length) {
      historyEnd = true;
      setHistory("end", "Beginning of the room");
    } else {
      if (msgs[0].cursor) oldestCursor = msgs[0].cursor;
      if (!lastCursor) lastCursor = msgs[msgs.length - 1].cursor || "";
      prependHistory(msgs);
      setHistory("idle", "Scroll up for older messages");
      ok = true;
    }
  } catch {
    setHistory("error", "Could not load older messages; scroll up to try again.");
    setTimeout(() => {
      if (list.scrollTop < 48) loadOlder();
    }, 5000);
  } finally {
    loadingOlder = false;
  }
  if (ok) fillIfShort();
}

// fillIfShort loads more history while the list cannot scroll, since the
// reader then has no way of scrolling to its top.
function fillIfShort() {
  if (!historyEnd && list.scrollHeight <= list.clientHeight + 48) loadOlder();
}

list.addEventListener(
  "scroll",
  () => {
    stickToBottom = atBottom();
    if (stickToBottom) newMessagesButton.hidden = true;
    if (list.scrollTop < 48) loadOlder();
  },
  { passive: true },
);

// Keep the newest message in view when the list changes size (the window,
// the message box growing) while following the conversation.
new ResizeObserver(() => {
  if (stickToBottom) list.scrollTop = list.scrollHeight;
}).observe(list);

newMessagesButton.addEventListener("click", () => {
  const hadFocus = document.activeElement === newMessagesButton;
  scrollToBottom();
  if (hadFocus) list.focus({ preventScroll: true });
});

// ---------------------------------------------------------------------------
// Live stream

function connect() {
  clearTimeout(retryTimer);
  if (source) source.close();
  const params = new URLSearchParams({ user: nick || ANONYMOUS });
  if (lastCursor) params.set("last_event_id", lastCursor);
  const es = new EventSource(streamURL(base + "/events?" + params.toString()));
  source = es;

  es.addEventListener("open", () => {
    if (es !== source) return;
    everOpened = true;
    retryDelay = 1000;
    updateState();
    loadMembers();
  });
  es.addEventListener("error", () => {
    if (es !== source) return;
    // CONNECTING: the browser retries by itself, sending Last-Event-ID.
    // CLOSED: it gave up (an HTTP error such as 503); retry from here.
    if (es.readyState === EventSource.CLOSED) scheduleRetry();
    updateState();
  });
  es.addEventListener("message", (e) => {
    if (es !== source) return;
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return; // ignore malformed events
    }
    if (!validMessage(msg)) return;
    lastCursor = e.lastEventId || msg.cursor || lastCursor;
    addLive(msg);
  });
  es.addEventListener("presence", () => {
    if (es !== source) return;
    membersSoon();
    roomsSoon();
  });
  // The server could not replay everything missed while disconnected
  // (history trimmed or recreated, or too much missed).
  es.addEventListener("reset", () => {
    if (es !== source) return;
    addNotice(RESET_NOTICE);
  });
  // The token is about to expire and the gateway will end the stream: a
  // fresh one in the cookie lets the browser's reconnect (with its
  // Last-Event-ID) go on where it left off.
  es.addEventListener("auth-expiring", () => {
    if (es !== source) return;
    refresh().then((ok) => {
      if (ok && tokenInURL && es === source) connect();
    });
  });
  updateState();
}

function scheduleRetry() {
  clearTimeout(retryTimer);
  const delay = retryDelay + Math.floor(Math.random() * 500);
  retryDelay = Math.min(retryDelay * 2, 15000);
  retryTimer = setTimeout(() => {
    if (navigator.onLine !== false) whenFresh(connect);
  }, delay);
}

window.addEventListener("online", () => {
  if (source && source.readyState === EventSource.CLOSED) connect();
  updateState();
});
window.addEventListener("offline", updateState);
window.addEventListener("pagehide", (e) => {
  if (e.persisted && source) {
    source.close();
    clearTimeout(retryTimer);
  }
});
window.addEventListener("pageshow", (e) => {
  if (e.persisted && source) connect();
});

// ---------------------------------------------------------------------------
// Sending

function showError(text, kind = "") {
  errorEl.textContent = text || "";
  errorKind = text ? kind : "";
  if (text && (kind === "blank" || kind === "size" || kind === "text")) {
    messageInput.setAttribute("aria-invalid", "true");
  } else {
    messageInput.removeAttribute("aria-invalid");
  }
}

// Error codes about the text itself: the message box is marked invalid.
const TEXT_ERRORS = new Set(["message_too_large", "body_too_large", "empty_message", "invalid_characters", "invalid_utf8"]);

function sizeError(bytes, limit) {
  return "Your message is " + bytes + " bytes; the limit is " + limit + ".";
}

function friendlyError(status, code, message) {
  const auth = authProblem(status, code, message);
  if (auth) return auth;
  switch (code) {
    case "message_too_large":
    case "body_too_large": {
      const m = /(\d+) bytes; the limit is (\d+)/.exec(message || "");
      return m ? sizeError(m[1], m[2]) : "Your message is too long; shorten it and try again.";
    }
    case "empty_message":
      return "Your message is empty; write something before sending.";
    case "invalid_characters":
      return "Your message contains control characters that can't be sent; remove them and try again.";
    case "invalid_utf8":
      return "Your message contains characters that can't be sent; remove them and try again.";
    case "invalid_user":
      return "The server does not accept your name; choose another one with “Change name”.";
    case "invalid_room":
      return "This room's name is not valid; open another room from the list.";
    case "unavailable":
      return UNAVAILABLE;
    case "request_timeout":
      return "The message took too long to reach the server; try again.";
  }
  if (status === 503) return UNAVAILABLE;
  if (message) return message.charAt(0).toUpperCase() + message.slice(1) + (/[.!?]$/.test(message) ? "" : ".");
  return "Sending failed (HTTP " + status + "); try again.";
}

function updateCount() {
  const bytes = textBytes(messageInput.value);
  if (bytes > MAX_TEXT_BYTES * 0.8) {
    countEl.textContent = bytes + " / " + MAX_TEXT_BYTES + " bytes";
    countEl.classList.toggle("over", bytes > MAX_TEXT_BYTES);
  } else {
    countEl.textContent = "";
    countEl.classList.remove("over");
  }
  return bytes;
}

async function send() {
  if (sending) return;
  if (nick === "" && !AUTH_ON) {
    openNickDialog(); // reading needs no name, writing does
    return;
  }
  const text = messageInput.value;
  if (text.trim() === "") {
    showError("Write a message first; it cannot be blank.", "blank");
    messageInput.focus();
    return;
  }
  const bytes = textBytes(text);
  if (bytes > MAX_TEXT_BYTES) {
    showError(sizeError(bytes, MAX_TEXT_BYTES), "size");
    messageInput.focus();
    return;
  }
  if (sendBlocked()) {
    showError("Not connected right now; send once the status shows “Connected”.", "state");
    return;
  }
  if (!pending || pending.text !== text) pending = { text, key: randomKey() };
  const key = pending.key;
  sending = true;
  updateSendButton();
  lastSentAt = Date.now();
  let res;
  try {
    res = await authFetch(base + "/messages", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", "Idempotency-Key": key },
      body: JSON.stringify({ user: nick || userInput.value.trim() || ANONYMOUS, text }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch {
    showError(NETWORK_ERROR, "network");
    return;
  } finally {
    sending = false;
    updateSendButton();
  }
  if (res.ok) {
    pending = null;
    // Keep anything typed while the message was on its way.
    const now = messageInput.value;
    messageInput.value = now === text ? "" : now.startsWith(text) ? now.slice(text.length).replace(/^\n/, "") : now;
    updateCount();
    showError("");
    if (document.activeElement === document.body || document.activeElement === sendButton) messageInput.focus();
    scrollToBottom();
    return;
  }
  let code = "";
  let message = "";
  try {
    const body = await res.json();
    if (body && body.error) {
      code = String(body.error.code || "");
      message = String(body.error.message || "");
    }
  } catch {
    // not JSON; keep the generic sentence
  }
  if (code !== "unavailable" && res.status !== 503) pending = null;
  showError(friendlyError(res.status, code, message), TEXT_ERRORS.has(code) ? "text" : "server");
}

form.noValidate = true;
form.addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});

// Enter sends; Shift+Enter (and Enter while an IME is composing) keeps its
// usual meaning.
let enterHandled = false;
messageInput.addEventListener("keydown", (e) => {
  enterHandled = false;
  if (e.key !== "Enter" || e.shiftKey || e.altKey || e.isComposing || e.keyCode === 229) return;
  e.preventDefault();
  enterHandled = true;
  send();
});
// Some synthetic key sequences still insert the line break of an Enter
// whose keydown was cancelled; drop it.
messageInput.addEventListener("beforeinput", (e) => {
  if (enterHandled && (e.inputType === "insertLineBreak" || e.inputType === "insertParagraph")) {
    e.preventDefault();
  }
  enterHandled = false;
});
messageInput.addEventListener("keyup", () => {
  enterHandled = false;
});

messageInput.addEventListener("input", () => {
  const bytes = updateCount();
  if (!errorKind) return;
  if (errorKind === "size" && bytes > MAX_TEXT_BYTES) {
    errorEl.textContent = sizeError(bytes, MAX_TEXT_BYTES);
  } else if (errorKind !== "state") {
    showError("");
  }
});

// ---------------------------------------------------------------------------
// Nickname

function setNick(name, remember) {
  const changed = name !== nick;
  nick = name;
  userInput.value = name;
  nickCurrent.textContent = name;
  updateMe();
  if (remember) storageSet(USER_KEY, name);
  if (!changed) return;
  refreshOwn();
  markMe();
  if (source) connect(); // presence follows the new name; the cursor is kept
}

// updateMe shows "You are <name>" and "Change name" once there is a name,
// and before that only the button to choose one.
function updateMe() {
  const named = nick !== "";
  meLabel.hidden = !named;
  nickCurrent.hidden = !named;
  if (!AUTH_ON) nickChange.textContent = named ? "Change name" : "Choose a name";
}

function openNickDialog() {
  const first = nick === "";
  nickInput.value = first ? "" : nick;
  nickInput.removeAttribute("aria-invalid");
  nickError.textContent = "";
  nickCancel.textContent = first ? "Stay anonymous" : "Cancel";
  if (!nickDialog.open) nickDialog.showModal();
  nickInput.focus();
  nickInput.select();
}

nickForm.noValidate = true;
nickForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const err = validateNick(nickInput.value);
  if (err) {
    nickError.textContent = err;
    nickInput.setAttribute("aria-invalid", "true");
    nickInput.focus();
    return;
  }
  const first = nick === "";
  setNick(nickInput.value.trim(), true);
  nickDialog.close("saved");
  if (first) messageInput.focus();
});

nickInput.addEventListener("input", () => {
  if (nickError.textContent && !validateNick(nickInput.value)) {
    nickError.textContent = "";
    nickInput.removeAttribute("aria-invalid");
  }
});

nickCancel.addEventListener("click", () => nickDialog.close("cancel"));

// Closing without a name (Cancel, Escape) means "anonymous".
nickDialog.addEventListener("close", () => {
  if (nick === "") {
    setNick(ANONYMOUS, false);
    messageInput.focus();
  }
});

nickChange.addEventListener("click", openNickDialog);

// ---------------------------------------------------------------------------
// Members

let membersSeq = 0;

function markMe() {
  for (const li of membersEl.querySelectorAll("li[data-user]")) {
    const me = li.dataset.user === nick;
    li.classList.toggle("self", me);
    const you = li.querySelector(".you");
    if (me && !you) li.append(el("span", "you", " (you)"));
    if (!me && you) you.remove();
  }
}

async function loadMembers() {
  const seq = ++membersSeq;
  let members = null;
  try {
    const body = await getJSON(base + "/members");
    members = Array.isArray(body.members) ? body.members : [];
  } catch {
    members = null;
  }
  if (seq !== membersSeq) return; // a newer answer is on its way
  if (!members) {
    membersEl.replaceChildren(el("li", "unavailable", "(presence unavailable)"));
    memberCount.textContent = "";
    return;
  }
  const names = members
    .map((m) => (m && typeof m.user === "string" && m.user ? m.user : ANONYMOUS))
    .filter((name, i, all) => all.indexOf(name) === i)
    .sort((a, b) => (a === nick ? -1 : b === nick ? 1 : a.localeCompare(b)));
  membersEl.replaceChildren(
    ...names.map((name) => {
      const li = el("li", "member");
      li.dataset.user = name;
      li.append(el("span", "member-name", name));
      return li;
    }),
  );
  markMe();
  memberCount.textContent = names.length ? String(names.length) : "";
}

// ---------------------------------------------------------------------------
// Rooms directory

let roomsSeq = 0;
let roomsKey = "";
let directory; // the last directory answer: undefined before it, null when unavailable

function buildRoom(r) {
  const li = el("li", "room-item");
  const a = el("a", "room-link", r.room);
  a.dataset.room = r.room;
  a.href = "/?room=" + encodeURIComponent(r.room);
  if (r.room === room) {
    a.setAttribute("aria-current", "page");
    li.classList.add("current");
  }
  li.append(a);
  const parts = [];
  if (typeof r.messages === "number") parts.push(plural(r.messages, "message", "messages"));
  else if (r.isNew) parts.push("new room");
  if (typeof r.members === "number") parts.push(r.members === 1 ? "1 person here" : r.members + " people here");
  if (parts.length) li.append(el("span", "room-meta", parts.join(" · ")));
  if (typeof r.topic === "string" && r.topic) li.append(el("span", "topic", r.topic));
  return li;
}

// withCount returns the directory's entry r of this room with the messages
// shown here that the directory had not counted yet (a higher seq than its
// last_seq) added, so the count follows the room between two answers.
function withCount(r) {
  const after = typeof r.last_seq === "number" ? r.last_seq : 0;
  const counted = typeof r.messages === "number" ? r.messages : 0;
  if (counted > 0 && after === 0) return r; // a directory that gives no last_seq
  let since = 0;
  for (const li of list.querySelectorAll("li.message")) {
    if (Number(li.dataset.seq) > after) since++;
  }
  return since ? { ...r, messages: counted + since } : r;
}

function showRooms() {
  if (directory === undefined) return;
  let rooms = directory;
  if (rooms) {
    rooms = rooms.filter((r) => r && typeof r.room === "string" && ROOM_RE.test(r.room));
    if (!rooms.some((r) => r.room === room)) rooms.unshift({ room, isNew: true });
    rooms = rooms.map((r) => (r.room === room ? withCount(r) : r));
  }
  renderRooms(rooms);
}

function renderRooms(rooms) {
  const key = rooms ? JSON.stringify(rooms) : "unavailable";
  if (key === roomsKey) return; // unchanged: leave the focus where it is
  roomsKey = key;
  const active = document.activeElement;
  const focused = roomsEl.contains(active) && active.dataset ? active.dataset.room : "";
  if (!rooms) {
    roomsEl.replaceChildren(el("li", "unavailable", "(directory unavailable)"));
    return;
  }
  roomsEl.replaceChildren(...rooms.map(buildRoom));
  if (focused) {
    const again = [...roomsEl.querySelectorAll("a[data-room]")].find((a) => a.dataset.room === focused);
    if (again) again.focus();
  }
}

async function loadRooms() {
  const seq = ++roomsSeq;
  let rooms = null;
  try {
    const body = await getJSON("/rooms");
    rooms = Array.isArray(body.rooms) ? body.rooms : [];
  } catch {
    rooms = null;
  }
  if (seq !== roomsSeq) return;
  directory = rooms;
  showRooms();
}

// coalesce returns a trigger for the async function load that runs it
// REFETCH_DELAY_MS after the first trigger of a burst, with at most one run
// in flight and one more pending: a room where people come and go quickly
// sends many presence events, and each need not cost a request.
function coalesce(load) {
  let timer = 0;
  let running = false;
  let again = false;
  const run = async () => {
    timer = 0;
    running = true;
    try {
      await load();
    } finally {
      running = false;
      if (again) {
        again = false;
        timer = setTimeout(run, REFETCH_DELAY_MS);
      }
    }
  };
  return () => {
    if (running) again = true;
    else if (!timer) timer = setTimeout(run, REFETCH_DELAY_MS);
  };
}

const membersSoon = coalesce(loadMembers);
const roomsSoon = coalesce(loadRooms);

roomForm.noValidate = true;
roomForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const name = roomInput.value.trim();
  const err = validateRoom(name);
  if (err) {
    roomError.textContent = err;
    roomInput.setAttribute("aria-invalid", "true");
    roomInput.focus();
    return;
  }
  roomError.textContent = "";
  roomInput.removeAttribute("aria-invalid");
  location.assign("/?room=" + encodeURIComponent(name));
});

roomInput.addEventListener("input", () => {
  if (roomError.textContent && !validateRoom(roomInput.value.trim())) {
    roomError.textContent = "";
    roomInput.removeAttribute("aria-invalid");
  }
});

// ---------------------------------------------------------------------------
// The side panel on narrow screens: the stylesheet hides it until the
// header's button opens it over the chat. On wide screens the button is
// not shown and the panel always is.

function panelOpen() {
  return sideToggle.getAttribute("aria-expanded") === "true";
}

function setPanel(open, { focus = true } = {}) {
  if (open === panelOpen()) return;
  sideToggle.setAttribute("aria-expanded", String(open));
  side.classList.toggle("open", open);
  if (!focus) return;
  if (open) {
    side.focus({ preventScroll: true });
  } else if (side.contains(document.activeElement) || document.activeElement === document.body) {
    sideToggle.focus();
  }
}

sideToggle.addEventListener("click", () => setPanel(!panelOpen()));
// A tap on the chat beside the open panel closes it.
document.querySelector(".chat").addEventListener("pointerdown", () => setPanel(false, { focus: false }));

// Escape closes the panel (the name dialog closes itself first).
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && panelOpen() && !nickDialog.open && !e.defaultPrevented) {
    e.preventDefault();
    setPanel(false);
  }
});

// ---------------------------------------------------------------------------
// Start

function trackHeaderHeight() {
  const header = document.querySelector(".topbar");
  if (!header) return;
  const set = () => document.documentElement.style.setProperty("--header-h", header.offsetHeight + "px");
  new ResizeObserver(set).observe(header);
  set();
}

function start() {
  if (followHash()) return;
  window.addEventListener("hashchange", followHash);
  reflectRoomInURL();
  document.documentElement.classList.add("js");
  updateTitle();
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && unread) {
      unread = 0;
      updateTitle();
    }
  });
  trackHeaderHeight();

  // Elements only useful with JavaScript; the name field gives way to the
  // header's name (it still carries it in the form).
  $("user-field").hidden = true;
  $("composer-hint").hidden = false;
  $("members-panel").hidden = false;
  sideToggle.hidden = false;
  updateState();

  if (AUTH_ON) {
    startSignedIn();
    return;
  }
  updateMe();
  $("me").hidden = false;
  const saved = storageGet(USER_KEY);
  if (saved && !validateNick(saved)) {
    setNick(saved.trim(), false);
  } else {
    openNickDialog();
  }

  // History first, then the live stream from the newest loaded cursor, so
  // nothing falls in between. It does not wait for a name: until one is
  // chosen the page reads the room (listening as "anonymous") and sending
  // asks for the name; choosing it reconnects from the same cursor.
  loadLatest().then(connect);
  loadMembers();
  loadRooms();
  setInterval(loadRooms, ROOMS_EVERY_MS);
}

// startSignedIn starts the page of a gateway that requires tokens: the
// token says who you are, so there is no name to choose or change, and
// nothing is asked of the gateway before the page holds one.
async function startSignedIn() {
  $("nick-change").hidden = true;
  document.querySelector("#me .me-label").textContent = "Signed in as";
  onUserChange((name) => setNick(name, false));
  setNick(await signIn(), false);
  $("me").hidden = false;
  loadMembers();
  loadRooms();
  setInterval(loadRooms, ROOMS_EVERY_MS);
  await loadLatest();
  connect();
}

start();
