// Kinetoscope Studio's browser UI: plain JavaScript, no build step. Pages are routes of the
// URL's hash (#/create, #/library, #/video/ID, #/feed, #/storyboard, #/login); every call
// goes to the REST API with the session cookie. User text is only ever set as text.
"use strict";

const state = { user: null, model: null, streams: [] };
const page = () => document.getElementById("page");

// ---- helpers ---------------------------------------------------------------------------

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else if (value !== false && value != null) element.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child != null) element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options };
  if (options.json !== undefined) {
    init.method = init.method || "POST";
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(options.json);
  }
  const answer = await fetch(path, init);
  const body = answer.status === 204 ? null : await answer.json().catch(() => null);
  if (!answer.ok) throw new Error((body && body.detail) || `${answer.status} ${answer.statusText}`);
  return body;
}

function field(label, input) {
  return h("div", {}, h("label", { for: input.id }, label), input);
}

function select(id, options, chosen) {
  return h("select", { id, name: id },
    options.map(([value, text]) => h("option", { value, selected: value === chosen }, text)));
}

function showError(where, error) { where.textContent = error ? error.message || error : ""; }

function closeStreams() {
  state.streams.forEach((stream) => stream.close());
  state.streams = [];
}

// Follow a video's events; call update(video) on each.
function follow(videoId, update) {
  const stream = new EventSource(`/api/videos/${videoId}/events`);
  stream.addEventListener("status", (event) => {
    const video = JSON.parse(event.data);
    update(video);
    if (["succeeded", "failed", "cancelled"].includes(video.status)) stream.close();
  });
  stream.addEventListener("gone", () => stream.close());
  state.streams.push(stream);
}

function statusLine(video) {
  const line = h("div", { class: "status" });
  const render = (current) => {
    const parts = [h("span", { class: `badge ${current.status}` }, current.status)];
    if (current.featured) parts.push(h("span", { class: "badge featured" }, "featured"));
    if (current.public) parts.push(h("span", { class: "badge" }, "public"));
    if (["queued", "running"].includes(current.status)) {
      parts.push(h("progress", { max: "1", value: String(current.progress) }));
    }
    line.replaceChildren(...parts);
  };
  render(video);
  line.update = render;
  return line;
}

function describe(video) {
  return video.title || video.parameters.prompt || `${video.kind} video`;
}

function tile(video) {
  const status = statusLine(video);
  const media = video.file_url
    ? h("video", { src: video.file_url, muted: true, loop: true, playsinline: true,
      onmouseenter: (e) => e.target.play(), onmouseleave: (e) => e.target.pause() })
    : h("div", { class: "placeholder" }, video.status);
  const credit = video.credited_creator ? ` · remix of ${video.credited_creator}` : "";
  const link = h("a", { class: "tile", href: `#/video/${video.id}`, "data-id": video.id },
    media,
    h("div", { class: "body" },
      h("div", { class: "title" }, describe(video)),
      h("div", { class: "note" }, `${video.creator} · ${video.seconds.toFixed(1)} s · ♥ ${video.likes}${credit}`),
      status));
  if (["queued", "running"].includes(video.status)) {
    follow(video.id, (current) => {
      status.update(current);
      if (current.status === "succeeded") route();
    });
  }
  return link;
}

// ---- account ---------------------------------------------------------------------------

async function loadAccount() {
  try { state.user = await api("/api/users/me"); } catch { state.user = null; }
  const box = document.getElementById("account");
  if (state.user) {
    const plan = state.user.plan;
    box.replaceChildren(
      h("span", {}, `${state.user.name} · ${plan.name} · ${state.user.credits_left} credits`),
      h("button", { onclick: logout }, "Sign out"));
  } else {
    box.replaceChildren(h("a", { href: "#/login" }, "Sign in"));
  }
}

async function logout() {
  await api("/api/auth/logout", { method: "POST" });
  await loadAccount();
  location.hash = "#/login";
}

function loginPage() {
  const error = h("div", { class: "error" });
  const name = h("input", { id: "name", autocomplete: "username", required: true });
  const password = h("input", { id: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "panel", style: "max-width: 360px" },
    h("h1", {}, "Sign in"), field("User name", name), field("Password", password),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("/api/auth/login", { json: { name: name.value, password: password.value } });
      await loadAccount();
      location.hash = "#/library";
    } catch (failure) { showError(error, failure); }
  });
  return form;
}

// ---- create ----------------------------------------------------------------------------

function samplingFields(defaults = {}) {
  const model = state.model;
  const plan = state.user.plan;
  const longest = Math.min(model.max_seconds, plan.max_seconds);
  const sizes = model.sizes.filter((size) => size <= plan.max_size);
  return {
    aspect: select("aspect", model.aspects.map((a) => [a, a]), defaults.aspect || model.aspects[0]),
    seconds: h("input", { id: "seconds", type: "number", min: String(model.min_seconds),
      max: String(longest), step: "0.25", value: String(defaults.seconds || model.min_seconds) }),
    size: select("size", sizes.map((s) => [String(s), `${s} px`]), String(defaults.size || model.short_side)),
    seed: h("input", { id: "seed", type: "number", min: "0", placeholder: "random" }),
    public: h("input", { id: "public", type: "checkbox" }),
  };
}

function samplingValues(fields) {
  const values = { aspect: fields.aspect.value, size: Number(fields.size.value), public: fields.public.checked };
  if (fields.seed.value !== "") values.seed = Number(fields.seed.value);
  return values;
}

function createPage() {
  const fields = samplingFields();
  const prompt = h("textarea", { id: "prompt", maxlength: "1000", required: true,
    placeholder: "A red ball falls and bounces on a blue floor." });
  const title = h("input", { id: "title", maxlength: "200", placeholder: "optional" });
  const error = h("div", { class: "error" });
  const form = h("form", { class: "panel" },
    h("h1", {}, "Create a video"),
    field("Prompt", prompt),
    h("div", { class: "row" },
      field("Aspect", fields.aspect), field("Seconds", fields.seconds),
      field("Size (short side)", fields.size), field("Seed", fields.seed)),
    field("Title", title),
    h("label", { class: "check" }, fields.public, "Show it in the feed once made"),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "create" }, "Create"),
      h("span", { class: "note" }, `Your ${state.user.plan.name} plan: up to ${state.user.plan.max_seconds} s, ${state.user.plan.max_size} px.`)),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const body = { kind: "generate", prompt: prompt.value, title: title.value,
        seconds: Number(fields.seconds.value), ...samplingValues(fields) };
      const created = await api("/api/videos", { json: body });
      location.hash = `#/video/${created.id}`;
    } catch (failure) { showError(error, failure); }
  });
  return form;
}

// ---- storyboard ------------------------------------------------------------------------

const CARD_KINDS = [["text", "Text"], ["image", "Image"], ["video", "Video"]];
const UPLOAD_TYPES = {
  image: ".png,.jpg,.jpeg,.webp,.bmp",
  video: ".mp4,.webm,.mov,.mkv,.avi,.gif",
};

// What image and video cards can show: the user's uploads, and their own finished videos.
async function cardInputs() {
  const [uploads, finished] = await Promise.all([
    api("/api/uploads"), api("/api/videos?status=succeeded&limit=100")]);
  const uploaded = (media) => uploads.filter((upload) => upload.media === media)
    .map((upload) => ({ id: upload.id, label: uploadLabel(upload) }));
  return {
    image: uploaded("image"),
    video: [...uploaded("video"),
      ...finished.videos.map((video) => ({ id: video.id, label: `your video: ${describe(video)}` }))],
  };
}

function uploadLabel(upload) {
  const length = upload.media === "video" ? `, ${upload.seconds.toFixed(1)} s` : "";
  return `${upload.filename} (${upload.width}×${upload.height}${length})`;
}

// Send a file to POST /api/uploads with the user's rights attestation; answers the upload.
function uploadFile(file, attested) {
  const form = new FormData();
  form.append("file", file);
  form.append("rights_attested", attested ? "true" : "false");
  return api("/api/uploads", { method: "POST", body: form });
}

const withArticle = (media) => (media === "image" ? "an image" : "a video");

// One card: a start time, a kind (text, image, video), a prompt, and for an image or video
// card its input, picked from `inputs` or uploaded here (onUpload() then refreshes every
// card's choices). row.card(number) answers the card as the API takes it, or throws a
// message naming what is missing.
function cardRow(inputs, start, prompt, onUpload) {
  const startInput = h("input", { type: "number", min: "0", step: "0.25", value: String(start),
    class: "card-start", "aria-label": "start (s)" });
  const kind = h("select", { class: "card-kind", "aria-label": "kind" },
    CARD_KINDS.map(([value, text]) => h("option", { value }, text)));
  const promptInput = h("input", { value: prompt, maxlength: "1000", class: "card-prompt",
    placeholder: "what happens from here", "aria-label": "prompt" });
  const picker = h("select", { class: "card-input", "aria-label": "image or video" });
  const file = h("input", { type: "file", class: "card-file", "aria-label": "file to upload" });
  const attest = h("input", { type: "checkbox", class: "card-rights" });
  const message = h("span", { class: "note card-message" });
  const uploadButton = h("button", { type: "button", class: "quiet card-upload" }, "Upload");
  const media = h("div", { class: "card-media", hidden: true },
    picker, h("span", { class: "note" }, "or upload"), file,
    h("label", { class: "check" }, attest, "I hold the rights to this file"),
    uploadButton, message);
  const fill = (chosen = picker.value) => {
    if (kind.value === "text") return;
    const options = inputs[kind.value];
    picker.replaceChildren(
      h("option", { value: "" }, options.length ? `choose ${withArticle(kind.value)}…` : `no ${kind.value}s yet: upload one`),
      ...options.map((input) => h("option", { value: input.id, selected: input.id === chosen }, input.label)));
  };
  kind.addEventListener("change", () => {
    media.hidden = kind.value === "text";
    file.value = "";
    file.setAttribute("accept", UPLOAD_TYPES[kind.value] || "");
    promptInput.placeholder = kind.value === "text" ? "what happens from here"
      : `what happens after the ${kind.value} (optional)`;
    message.textContent = "";
    fill("");
  });
  uploadButton.addEventListener("click", async () => {
    if (!file.files.length) { message.textContent = "Choose a file first."; return; }
    if (!attest.checked) {
      message.textContent = "Tick “I hold the rights to this file” to upload it.";
      return;
    }
    uploadButton.disabled = true;
    message.textContent = "Uploading…";
    try {
      const upload = await uploadFile(file.files[0], attest.checked);
      inputs[upload.media].unshift({ id: upload.id, label: uploadLabel(upload) });
      onUpload();
      if (upload.media !== kind.value) {
        throw new Error(`${upload.filename} is ${withArticle(upload.media)}, not ${withArticle(kind.value)}`);
      }
      fill(upload.id);
      message.textContent = `Uploaded ${upload.filename}.`;
    } catch (failure) {
      message.textContent = failure.message;
    } finally {
      uploadButton.disabled = false;
    }
  });
  const row = h("div", { class: "card" },
    h("div", { class: "card-row" }, startInput, kind, promptInput,
      h("button", { type: "button", class: "quiet", onclick: () => row.remove() }, "Remove")),
    media);
  row.refresh = () => fill();
  row.card = (number) => {
    const card = { start: Number(startInput.value), prompt: promptInput.value };
    if (kind.value !== "text") {
      if (!picker.value) throw new Error(`card ${number}: choose ${withArticle(kind.value)} or upload one`);
      card[kind.value] = picker.value;
    }
    return card;
  };
  return row;
}

async function storyboardPage() {
  const inputs = await cardInputs();
  const fields = samplingFields({ seconds: 4 });
  const total = h("input", { id: "board-seconds", type: "number", min: "1", step: "0.5",
    max: String(state.user.plan.max_seconds), value: "4" });
  const cards = h("div", { id: "cards" });
  const error = h("div", { class: "error" });
  const refresh = () => [...cards.children].forEach((row) => row.refresh());
  const addCard = (start, prompt) => cards.append(cardRow(inputs, start, prompt, refresh));
  addCard(0, "A red ball rolls to the right.");
  addCard(2, "The red ball falls and bounces.");
  const form = h("form", { class: "panel" },
    h("h1", {}, "Storyboard"),
    h("p", { class: "note" }, "Cards on a timeline: each starts at its time (the first at 0) and holds until the next. ",
      "An image or video card appears exactly at its start, reached by a short transition; its prompt says what happens next."),
    h("div", { class: "row" }, field("Total seconds", total), field("Aspect", fields.aspect), field("Size", fields.size), field("Seed", fields.seed)),
    h("h2", {}, "Cards (start in seconds, kind, prompt)"), cards,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "quiet", onclick: () => addCard(Number(total.value) / 2, "") }, "Add a card"),
      h("label", { class: "check" }, fields.public, "Public"),
      h("button", { type: "submit" }, "Make the video")),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const board = { seconds: Number(total.value),
        cards: [...cards.children].map((row, index) => row.card(index + 1))
          .sort((a, b) => a.start - b.start) };
      const created = await api("/api/videos", { json: { kind: "storyboard", board, ...samplingValues(fields) } });
      location.hash = `#/video/${created.id}`;
    } catch (failure) { showError(error, failure); }
  });
  return form;
}

// ---- library and feed ------------------------------------------------------------------

async function libraryPage() {
  const { videos } = await api("/api/videos");
  return h("section", {}, h("h1", {}, "Your videos"),
    videos.length ? h("div", { class: "grid", id: "library" }, videos.map(tile))
      : h("p", { class: "note" }, "Nothing yet: ", h("a", { href: "#/create" }, "create a video"), "."));
}

async function feedPage() {
  const [featured, all] = await Promise.all([
    api("/api/feed?featured=true"), api("/api/feed")]);
  const rest = all.videos.filter((video) => !video.featured);
  return h("section", {},
    h("h1", {}, "Featured"),
    featured.videos.length ? h("div", { class: "grid", id: "featured" }, featured.videos.map(tile))
      : h("p", { class: "note" }, "No featured videos yet."),
    h("h2", {}, "Latest public videos"),
    rest.length ? h("div", { class: "grid", id: "feed" }, rest.map(tile))
      : h("p", { class: "note" }, "No public videos yet."));
}

// ---- one video -------------------------------------------------------------------------

async function videoPage(videoId) {
  const video = await api(`/api/videos/${videoId}`);
  const error = h("div", { class: "error" });
  const status = statusLine(video);
  const run = (action) => async () => {
    try { await action(); route(); } catch (failure) { showError(error, failure); }
  };
  const player = video.file_url
    ? h("video", { id: "player", src: video.file_url, controls: true, loop: true, autoplay: true, muted: true, playsinline: true })
    : h("div", { class: "tile" }, h("div", { class: "placeholder" }, video.error || "being made…"));
  const details = h("dl", {},
    [["Kind", video.kind], ["Creator", video.creator], ["Length", `${video.seconds.toFixed(2)} s`],
      ["Size", `${video.size} px`], ["Credits", video.credits], ["Likes", video.likes],
      ["Remix of", video.credited_creator], ["Error", video.error]]
      .filter(([, value]) => value != null && value !== "")
      .map(([name, value]) => [h("dt", {}, name), h("dd", {}, String(value))]),
    Object.entries(video.parameters).filter(([name]) => name !== "kind").map(([name, value]) =>
      [h("dt", {}, name), h("dd", {}, typeof value === "object" ? JSON.stringify(value) : String(value))]));
  const actions = h("div", { class: "actions" });
  if (video.file_url) {
    actions.append(h("a", { href: `${video.file_url}?download=true`, download: "" }, h("button", { type: "button", class: "quiet" }, "Download")));
  }
  if (state.user) {
    actions.append(h("button", { type: "button", class: "quiet", id: "like",
      onclick: run(() => api(`/api/videos/${videoId}/like`, { method: video.liked ? "DELETE" : "POST" })) },
    video.liked ? "♥ Liked" : "♡ Like"));
  }
  if (video.mine) {
    actions.append(h("button", { type: "button", id: "publish",
      onclick: run(() => api(`/api/videos/${videoId}`, { method: "PATCH", json: { public: !video.public } })) },
    video.public ? "Unpublish" : "Publish"));
    const active = ["queued", "running"].includes(video.status);
    actions.append(h("button", { type: "button", class: "quiet", id: "delete", onclick: run(async () => {
      await api(`/api/videos/${videoId}`, { method: "DELETE" });
      if (!active) location.hash = "#/library";
    }) }, active ? "Cancel" : "Delete"));
  }
  if (state.user && state.user.admin && video.public) {
    actions.append(h("button", { type: "button", class: "quiet", id: "feature",
      onclick: run(() => api(`/api/videos/${videoId}`, { method: "PATCH", json: { featured: !video.featured } })) },
    video.featured ? "Unfeature" : "Feature"));
  }
  const tools = video.status === "succeeded" && state.user ? toolsPanel(video, error) : null;
  if (["queued", "running"].includes(video.status)) {
    follow(videoId, (current) => {
      status.update(current);
      if (["succeeded", "failed", "cancelled"].includes(current.status)) route();
    });
  }
  return h("section", {},
    h("h1", {}, describe(video)),
    h("div", { class: "player" }, h("div", {}, player, status, actions, error),
      h("div", { class: "panel" }, details)),
    tools);
}

function toolsPanel(video, error) {
  const prompt = h("input", { id: "tool-prompt", maxlength: "1000", value: video.parameters.prompt || "" });
  const seconds = h("input", { id: "tool-seconds", type: "number", min: "0.5", step: "0.5", value: "2" });
  const strength = h("input", { id: "tool-strength", type: "number", min: "0", max: "1", step: "0.1", value: "0.6" });
  const make = (kind, extra) => async () => {
    try {
      const body = { kind, video: video.id, prompt: prompt.value, aspect: video.parameters.aspect,
        size: video.size, ...extra() };
      const created = await api("/api/videos", { json: body });
      location.hash = `#/video/${created.id}`;
    } catch (failure) { showError(error, failure); }
  };
  return h("div", { class: "panel", style: "margin-top: 24px" },
    h("h2", { style: "margin-top: 0" }, "Make more from this video"),
    h("div", { class: "row" }, field("Prompt", prompt), field("Seconds to add", seconds), field("Remix strength", strength)),
    h("div", { class: "actions" },
      h("button", { type: "button", id: "remix", onclick: make("remix", () => ({ strength: Number(strength.value) })) }, "Remix"),
      h("button", { type: "button", id: "extend", onclick: make("extend", () => ({ seconds: Number(seconds.value) })) }, "Extend"),
      h("button", { type: "button", id: "loop", onclick: make("loop", () => ({ transition: 1 })) }, "Loop")));
}

// ---- routing ---------------------------------------------------------------------------

const pages = {
  login: loginPage, create: createPage, storyboard: storyboardPage,
  library: libraryPage, feed: feedPage, video: videoPage,
};
const needsAccount = new Set(["create", "storyboard", "library"]);

let routing = 0; // the latest route() call: a slower earlier one must not draw over it

async function route() {
  const current = ++routing;
  closeStreams();
  if (location.hash.startsWith("#/") && !location.hash.startsWith("#/login")) await loadAccount();
  const [name, argument] = location.hash.replace(/^#\/?/, "").split("/");
  const chosen = pages[name] ? name : "feed";
  if (needsAccount.has(chosen) && !state.user) { location.hash = "#/login"; return; }
  document.querySelectorAll("nav a").forEach((link) =>
    link.classList.toggle("current", link.dataset.page === chosen));
  let content;
  try {
    content = await pages[chosen](argument);
  } catch (failure) {
    content = h("p", { class: "error" }, failure.message);
  }
  if (current !== routing) return;
  page().replaceChildren(content);
  document.body.dataset.page = chosen;
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", async () => {
  state.model = await api("/api/model");
  await loadAccount();
  route();
});
