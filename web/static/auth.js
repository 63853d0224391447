// Signing in to a gateway that requires tokens (data-auth="jwt" on
// <body>). The page gets a JSON Web Token from the application's sign-in
// service (data-token-url: a GET with the browser's credentials answering
// {"token":"…"}), keeps it in memory and sends it as Authorization: Bearer
// on every request. EventSource cannot send headers, so the token also goes
// into the cookie the gateway reads (data-auth-cookie). The token's sub is
// the user; its payload is decoded only to show who you are and to know
// when to renew it, never trusted: the gateway verifies every request.
// When the sign-in service does not know the browser (401), the page links
// to its sign-in page (data-signin-url) with ?next= the page's own path, so
// the user comes back here signed in.
//
// With data-auth="off" nothing here changes what the page does: authFetch
// is fetch, and the stream needs no token.

const data = document.body.dataset;

// AUTH_ON: the gateway requires a token on every request.
export const AUTH_ON = data.auth === "jwt";

const TOKEN_URL = data.tokenUrl || "";
// Only a path of this site or an http(s) URL is linked, never javascript:.
const SIGNIN_URL = /^(\/(?![/\\])|https?:\/\/)/i.test(data.signinUrl || "") ? data.signinUrl : "";
// A cookie name is an HTTP token; anything else is not written.
const COOKIE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(data.authCookie || "") ? data.authCookie : "";

// tokenInURL: the gateway reads no cookie, so a stream's token is in its
// URL and a fresh token needs a new stream (the browser's own reconnect
// would resend the old one).
export const tokenInURL = AUTH_ON && !COOKIE;

const TOKEN_TIMEOUT_MS = 15000;
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 60000;
// A new stream is opened with a token that has at least this long left.
const FRESH_FOR_MS = 5000;

let token = "";
let user = "";
let expiresAt = 0; // by this page's clock
let inflight = null; // the token request under way
let failures = 0; // token requests failed in a row
let notBefore = 0; // no token request before this time: backing off
let onUser = null;

const statusEl = document.getElementById("auth-status");

// ---------------------------------------------------------------------------
// The token

class SignInError extends Error {
  // signedOut: the sign-in service answered 401, it does not know this
  // browser; signing in helps.
  constructor(message, signedOut = false) {
    super(message);
    this.signedOut = signedOut;
  }
}

// decodeClaims returns the token's payload, or null if it is not a JWT
// with a JSON object for payload.
function decodeClaims(tok) {
  const parts = tok.split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const json = new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    const claims = JSON.parse(json);
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

// requestToken asks the sign-in service for a token and returns it with
// its claims; it throws a SignInError saying what went wrong.
async function requestToken() {
  if (!TOKEN_URL) throw new SignInError("this chat server names no sign-in service (--auth-token-url).");
  let resp;
  try {
    resp = await fetch(TOKEN_URL, {
      credentials: "include",
      headers: { Accept: "application/json" },
      cache: "no-store",
      signal: AbortSignal.timeout(TOKEN_TIMEOUT_MS),
    });
  } catch {
    throw new SignInError("the sign-in service could not be reached.");
  }
  if (!resp.ok) throw new SignInError("the sign-in service answered HTTP " + resp.status + ".", resp.status === 401);
  let body = null;
  try {
    body = await resp.json();
  } catch {
    // not JSON: no token
  }
  const tok = body && typeof body.token === "string" ? body.token.trim() : "";
  if (!tok) throw new SignInError("the sign-in service answered without a token.");
  const claims = decodeClaims(tok);
  if (!claims || typeof claims.sub !== "string" || claims.sub === "") {
    throw new SignInError("the sign-in service's token does not say who you are.");
  }
  return { tok, claims };
}

// expiry estimates when a token expires by this page's clock: its
// lifetime (exp - iat) from now, or exp itself if that comes first, so a
// browser whose clock is off still refreshes in time.
function expiry(claims) {
  const now = Date.now();
  let at = typeof claims.exp === "number" ? claims.exp * 1000 : Infinity;
  if (typeof claims.exp === "number" && typeof claims.iat === "number" && claims.exp > claims.iat) {
    at = Math.min(at, now + (claims.exp - claims.iat) * 1000);
  }
  return at;
}

function writeCookie(tok) {
  if (!COOKIE) return;
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = COOKIE + "=" + encodeURIComponent(tok) + "; Path=/; SameSite=Strict" + secure;
}

function adopt(tok, claims) {
  const before = user;
  token = tok;
  user = claims.sub;
  expiresAt = expiry(claims);
  writeCookie(tok);
  failures = 0;
  notBefore = 0;
  showProblem("");
  if (before && before !== user && onUser) onUser(user);
}

// signInLink is the sign-in page's URL, bringing the user back here.
function signInLink() {
  const next = location.pathname + location.search;
  return SIGNIN_URL + (SIGNIN_URL.includes("?") ? "&" : "?") + "next=" + encodeURIComponent(next);
}

let shown = null; // what showProblem shows: [text, link, after]

// showProblem shows text, then, with link, a "Sign in" link to it and
// after; "" clears it. The element is rebuilt only when that changes.
function showProblem(text, link = "", after = "") {
  if (!statusEl || (shown && shown[0] === text && shown[1] === link && shown[2] === after)) return;
  shown = [text, link, after];
  statusEl.replaceChildren(text);
  if (link) {
    const a = document.createElement("a");
    a.id = "signin-link";
    a.href = link;
    a.textContent = "Sign in";
    statusEl.append(a, after);
  }
}

// refresh gets a new token now, unless one is on its way (it then waits for
// that one) or the last attempts failed and the back-off has not run out.
// It resolves to whether the page holds a token it just got; it never
// rejects.
export function refresh() {
  if (!AUTH_ON) return Promise.resolve(false);
  if (inflight) return inflight;
  if (Date.now() < notBefore) return Promise.resolve(false);
  inflight = requestToken()
    .then(({ tok, claims }) => {
      adopt(tok, claims);
      return true;
    })
    .catch((err) => {
      failures++;
      // 1 s, 2 s, 4 s… up to a minute, each a little longer at random so
      // that many pages do not ask at the same moment.
      const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (failures - 1)) * (1 + Math.random() / 4);
      notBefore = Date.now() + delay;
      const why = err instanceof SignInError ? err.message : "the sign-in service's answer could not be read.";
      // Until the token it holds expires, the page is still signed in.
      const lead = token && Date.now() < expiresAt ? "Your sign-in could not be renewed: " : "You are not signed in: ";
      if (err instanceof SignInError && err.signedOut && SIGNIN_URL) {
        showProblem(lead + why + " ", signInLink(), " to chat here.");
      } else {
        showProblem(lead + why + " The page keeps trying; reloading it tries at once.");
      }
      return false;
    })
    .finally(() => {
      inflight = null;
    });
  return inflight;
}

// signIn resolves to the user once the page holds a token, trying again
// with back-off for as long as the sign-in service fails.
export async function signIn() {
  while (!(await refresh())) {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, notBefore - Date.now())));
  }
  return user;
}

// whenFresh calls then once the page holds a token with some time left
// (getting a new one if needed, and calling then anyway if that fails: the
// caller's request then fails and is retried as any other). With auth off
// it calls then at once.
export function whenFresh(then) {
  if (!AUTH_ON) {
    then();
    return;
  }
  if (token && expiresAt - Date.now() > FRESH_FOR_MS) {
    then();
    return;
  }
  refresh().then(() => then());
}

// onUserChange sets what is called when a new token names another user
// (signed out and in as someone else meanwhile).
export function onUserChange(f) {
  onUser = f;
}

// ---------------------------------------------------------------------------
// Requests

function withToken(init, tok) {
  if (!tok) return init;
  const headers = new Headers(init.headers);
  headers.set("Authorization", "Bearer " + tok);
  return { ...init, headers };
}

// authFetch is fetch with the page's token. A request refused with 401 (the
// token expired or was revoked) is sent once more with a fresh token.
export async function authFetch(url, init = {}) {
  if (!AUTH_ON) return fetch(url, init);
  if (!token) await refresh();
  const used = token;
  const resp = await fetch(url, withToken(init, used));
  if (resp.status !== 401) return resp;
  if (token === used && !(await refresh())) return resp;
  return fetch(url, withToken(init, token));
}

// streamURL is the URL of an event stream: the token rides in the cookie,
// or, when the gateway names none, in access_token (which the gateway then
// has to accept: --auth-query-token).
export function streamURL(url) {
  if (!AUTH_ON || COOKIE || !token) return url;
  return url + (url.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(token);
}

// authProblem returns the sentence to show for a request refused for want
// of a valid token (401) or of a grant (403), or "" for other errors.
export function authProblem(status, code, message) {
  const said = String(message || "").replace(/[.\s]+$/, "");
  if (status === 401 || code === "unauthorized") {
    return "You are not signed in: " + (said || "the server refused your token") + ". Reload the page to sign in again.";
  }
  if (code === "forbidden") {
    return said ? said.charAt(0).toUpperCase() + said.slice(1) + "." : "Your sign-in does not allow this.";
  }
  return "";
}

// requestError returns an Error for a response that is not 2xx, carrying
// in text the sentence to show when the cause is the token, else "".
export async function requestError(resp) {
  let code = "";
  let message = "";
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = String(body.error.code || "");
      message = String(body.error.message || "");
    }
  } catch {
    // not JSON
  }
  const err = new Error("HTTP " + resp.status);
  err.text = authProblem(resp.status, code, message);
  return err;
}
