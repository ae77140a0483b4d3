/*
 * Dify Relay chat widget: one <script> tag, no build step, no third-party requests.
 *
 *   <script src="relay-widget.js" data-relay-url="https://abc.execute-api.eu-west-1.amazonaws.com/live"
 *           data-title="Ask us" data-color="#0b5fff" data-consent="I agree to the chat terms." defer></script>
 *
 * data-relay-url (required): the relay's base URL (the stack's ApiUrl output, without /v1).
 * data-app: the id of one of the stack's registered apps (make app); without it, the stack's default app. A
 *   page may embed several widgets, one per app: each keeps its own session, consent and branding.
 * Branding: data-title, data-color (primary), data-text-color (text on it), data-accent (focus ring and chips),
 *   data-theme (light, dark or auto: the visitor's system setting), data-position (right or left),
 *   data-launcher-label (text on the launcher), data-launcher-icon and data-avatar (image URLs), data-greeting
 *   (instead of the app's opening statement), data-placeholder, data-font (a CSS font-family).
 * Animated trigger: data-trigger (pulse, or slide: the launcher slides in), after data-trigger-after seconds or
 *   once the page is scrolled data-trigger-scroll percent; none when the visitor prefers reduced motion.
 * Every option may also come from window.DifyRelayConfig ({relayUrl, title, color, ...}); data-* wins. The
 *   deployment's own defaults (WIDGET_BRANDING, sent in /v1/config) come under both: they style the panel once
 *   the chat opens, and the launcher from the visitor's next page view on (remembered, with no extra request).
 * data-consent: when set, nothing reaches the relay (no history, no message) until the visitor ticks a checkbox
 *   with this text (and a link to data-privacy-url, when given); the choice is remembered, and "Forget me"
 *   erases the conversation and the choice.
 * data-stream="off": ask for whole answers (POST /v1/chat) instead of streamed ones (POST /v1/chat/stream).
 * Voice, images and answers read aloud appear where the Dify app has them on (/v1/config features): a
 *   microphone records a voice message (MP4 audio through MediaRecorder, or WAV where the browser cannot record
 *   MP4: the formats every Dify release transcribes; up to 60 s) whose
 *   text the visitor may edit before sending; an attach button adds images to the next message; each answer
 *   gets a "Read aloud" button. data-voice="off", data-images="off" or data-speech="off" leave one out.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var pageOptions = Object.assign({}, window.DifyRelayConfig || {}, (script && script.dataset) || {});
  var base = (pageOptions.relayUrl || "").replace(/\/+$/, "");
  if (!base) {
    console.error("relay-widget: data-relay-url is required");
    return;
  }
  // data-app: one of the stack's registered apps (its routes are /v1/apps/<app>/...); none: the default app.
  var app = pageOptions.app || "";
  if (app && (!/^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/.test(app) || app === "default")) {
    console.error("relay-widget: data-app must be a registered app's id (lower-case letters, digits and -; " +
      "leave it out for the default app), got " + JSON.stringify(app));
    return;
  }
  var api = base + (app ? "/v1/apps/" + app : "/v1");
  // Each app has its own session, consent and remembered branding, even on one page.
  var storeKey = "dify-relay:" + base + (app ? "#" + app : "");
  // The deployment's branding (/v1/config, remembered from the last visit) under the page's own options.
  var options = Object.assign({}, remembered("branding"), pageOptions);
  var consentText = options.consent || "";
  var streaming = options.stream !== "off" && !!(window.ReadableStream && window.AbortController && window.TextDecoder);

  // Icons are inline SVG: no font or emoji support needed, no request to anyone.
  var THUMB =
    '<svg viewBox="0 0 24 24" width="14" height="14" aria-hidden="true"><path fill="currentColor" ' +
    'd="M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6V3a1.5 1.5 0 0 0-.4-1L13 1 6.6 7.4A2 2 0 0 0 6 9v10a2 ' +
    '2 0 0 0 2 2h9a2 2 0 0 0 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z"/></svg>';

  var MESSAGES = {
    rate_limited: "You are sending messages quickly. Please wait {s} seconds and try again.",
    busy: "The assistant is busy. Please try again in a moment.",
    offline: "You appear to be offline. Check your connection and try again.",
    unreachable: "The assistant could not be reached. Please try again later.",
    unavailable: "This assistant is unavailable right now.",
    refused: "This site may not use this assistant.",
    invalid: "That message could not be sent: {m}",
    interrupted: "The answer was interrupted. Please ask again.",
    stopped: "Stopped.",
    microphone: "The microphone is not available. Check the browser's permission for this site.",
    recording: "Recording… select the microphone again to stop.",
    tooManyImages: "You can attach up to {n} images to a message.",
    imageType: "Only images of these types can be attached: {t}.",
    imageSize: "That image is larger than {mb} MB.",
  };
  var MIC =
    '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><path fill="currentColor" d="M12 15a3 3 0 0 0 3-3V6a3 3 0 ' +
    '0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.9V22h2v-3.1a7 7 0 0 0 6-6.9h-2z"/></svg>';
  var CLIP =
    '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true"><path fill="currentColor" d="M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 ' +
    '2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6h-1.5z"/></svg>';
  var SPEAKER =
    '<svg viewBox="0 0 24 24" width="14" height="14" aria-hidden="true"><path fill="currentColor" d="M3 9v6h4l5 5V4L7 9H3zm13.5 ' +
    '3A4.5 4.5 0 0 0 14 8v8a4.5 4.5 0 0 0 2.5-4z"/></svg>';

  function remembered(key) {
    try { return JSON.parse(load(key)) || {}; } catch (e) { return {}; }
  }
  function load(key) {
    try { return window.localStorage.getItem(storeKey + ":" + key); } catch (e) { return null; }
  }
  function save(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(storeKey + ":" + key);
      else window.localStorage.setItem(storeKey + ":" + key, value);
    } catch (e) { /* storage may be off: the widget still works for this page view */ }
  }
  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return String(Date.now()) + "-" + Math.random().toString(16).slice(2);
  }

  // --- talking to the relay ------------------------------------------------------------------------

  function RelayError(kind, text) { this.kind = kind; this.text = text; }

  function call(method, path, body, headers) {
    var options = { method: method, headers: Object.assign({}, headers || {}) };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return request(path, options);
  }

  // A file as the request body (a recording or an image): the relay reads its type from its bytes.
  function upload(path, blob) {
    var session = load("session");
    var query = session ? "?sessionId=" + encodeURIComponent(session) : "";
    return blob.arrayBuffer().then(function (bytes) {
      return request(path + query, { method: "POST", headers: { "Content-Type": blob.type }, body: bytes });
    });
  }

  // The relay's JSON answer (null for 204), or the RelayError a refusal or a failed request means.
  function request(path, options) {
    return fetch(api + path, options).then(function (response) {
      if (response.status === 204) return null;
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (response.ok) return data;
        throw describe(response, (data && data.error) || {});
      });
    }, function () {
      // The browser hides why a request failed: no network, or a page the relay does not serve (no CORS grant).
      throw new RelayError("offline", navigator.onLine === false ? MESSAGES.offline : MESSAGES.unreachable);
    });
  }

  // The relay's Server-Sent Events as they arrive: on(name, data) for each.
  function readEvents(response, on) {
    var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buffer += decoder.decode(chunk.value, { stream: true });
        for (var end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          var name = "message", data = [];
          buffer.slice(0, end).split("\n").forEach(function (line) {
            if (line.indexOf("event: ") === 0) name = line.slice(7);
            else if (line.indexOf("data: ") === 0) data.push(line.slice(6));
          });
          buffer = buffer.slice(end + 2);
          if (data.length) on(name, JSON.parse(data.join("\n")));
        }
        return pump();
      });
    }
    return pump();
  }

  // A streamed turn: resolves to the whole answer (null when the visitor stopped it). A failure before the
  // first event that is not the relay's own refusal is marked `fallback`: POST /v1/chat may still answer.
  function streamTurn(body, key, turn) {
    turn.controller = new AbortController();
    var headers = { "Content-Type": "application/json", Accept: "text/event-stream", "Idempotency-Key": key };
    var lost = function () {
      if (turn.stopped) return null;
      var error = new RelayError("offline", turn.item ? MESSAGES.interrupted : MESSAGES.unreachable);
      error.fallback = !turn.item;
      throw error;
    };
    return fetch(api + "/chat/stream", {
      method: "POST", headers: headers, body: JSON.stringify(body), signal: turn.controller.signal,
    }).then(function (response) {
      if (!response.ok || (response.headers.get("Content-Type") || "").indexOf("text/event-stream") !== 0) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          var error = describe(response, (data && data.error) || {});
          error.fallback = !(data && data.error);  // not the relay's answer: no streamed route here
          throw error;
        });
      }
      var end = null, failure = null;
      return readEvents(response, function (name, data) {
        if (name === "start") turn.begin(data);
        else if (name === "delta") turn.write(turn.text + data.text);
        else if (name === "replace") turn.write(data.text);
        else if (name === "end") end = data;
        else if (name === "error") failure = data.error || {};
      }).then(function () {
        if (failure) throw describe(null, failure);
        return end || lost();
      }, lost);
    }, lost);
  }

  function describe(response, error) {
    var wait = response && response.headers.get("Retry-After");
    if (error.code === "rate_limited") return new RelayError("limited", MESSAGES.rate_limited.replace("{s}", wait || "a few"));
    if (error.code === "origin_not_allowed") return new RelayError("refused", MESSAGES.refused);
    if (["invalid_request", "message_too_long", "request_too_large", "unsupported_media_type"].indexOf(error.code) >= 0)
      return new RelayError("invalid", MESSAGES.invalid.replace("{m}", error.message || ""));
    if (error.retryable) return new RelayError("busy", MESSAGES.busy);
    return new RelayError("unavailable", MESSAGES.unavailable);
  }

  // --- the interface -------------------------------------------------------------------------------

  var host = document.createElement("div");
  host.className = "dify-relay-widget";
  if (app) host.dataset.app = app;
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML =
    "<style>" +
    ":host{all:initial;--bg:#fff;--fg:#1d1d1f;--soft:#f1f1f4;--line:#c9c9d1;" +
    "font:15px/1.4 var(--font,system-ui,-apple-system,Segoe UI,Roboto,sans-serif);color:var(--fg)}" +
    ":host([data-theme=dark]){--bg:#1c1c1e;--fg:#f2f2f7;--soft:#2c2c2e;--line:#48484a}" +
    "@media (prefers-color-scheme:dark){:host([data-theme=auto]){--bg:#1c1c1e;--fg:#f2f2f7;--soft:#2c2c2e;--line:#48484a}}" +
    ":host([data-position=left]) .bubble,:host([data-position=left]) .panel{left:20px;right:auto}" +
    ".bubble.labelled{width:auto;border-radius:28px;padding:0 18px 0 14px;display:flex;align-items:center;gap:8px;font:inherit;font-weight:600}" +
    ".bubble img,.avatar{width:28px;height:28px;border-radius:50%;object-fit:cover}" +
    ".bubble.pending{visibility:hidden}" +
    ".bubble.attention.pulse{animation:pulse 1.2s ease-in-out 3}" +
    ".bubble.attention.slide{animation:slide .5s ease-out}" +
    "@keyframes pulse{50%{transform:scale(1.12)}}" +
    "@keyframes slide{from{transform:translateY(120px);opacity:0}}" +
    "@media (prefers-reduced-motion:reduce){.bubble.attention.pulse,.bubble.attention.slide{animation:none}}" +
    ".bubble{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;" +
    "background:var(--c);color:var(--t);font-size:26px;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    ".panel{position:fixed;right:20px;bottom:88px;width:min(380px,calc(100vw - 40px));height:min(560px,calc(100vh - 120px));" +
    "display:flex;flex-direction:column;background:var(--bg);border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden}" +
    ".panel[hidden]{display:none}" +
    "header{display:flex;align-items:center;gap:8px;padding:12px 14px;background:var(--c);color:var(--t)}" +
    "header h2{flex:1;margin:0;font-size:16px}" +
    "header button{background:transparent;border:1px solid currentColor;color:inherit;border-radius:6px;padding:2px 8px;cursor:pointer}" +
    ".bubble svg{vertical-align:middle}" +
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px}" +
    ".msg{max-width:85%;padding:8px 11px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word}" +
    ".visitor{align-self:flex-end;background:var(--c);color:var(--t)}" +
    ".assistant{align-self:flex-start;background:var(--soft)}" +
    ".notice{align-self:center;background:#fff4e5;color:#7a4100;font-size:13px}" +
    ".tools{display:flex;gap:4px;margin-top:4px}" +
    ".tools button,.chips button{border:1px solid var(--a,var(--line));background:var(--bg);color:var(--fg);border-radius:14px;padding:2px 9px;cursor:pointer}" +
    ".tools button[aria-pressed=true]{background:var(--c);color:var(--t);border-color:var(--c)}" +
    ".chips{display:flex;flex-wrap:wrap;gap:6px;padding:0 12px 8px}" +
    "form{display:flex;gap:6px;padding:10px;border-top:1px solid var(--line)}" +
    "textarea{flex:1;resize:none;font:inherit;padding:7px;border:1px solid var(--line);border-radius:8px;background:var(--bg);color:var(--fg)}" +
    "form button{background:var(--c);color:var(--t);border:0;border-radius:8px;padding:0 14px;cursor:pointer}" +
    "form button:disabled{opacity:.5;cursor:not-allowed}" +
    "form .stop{background:var(--bg);color:var(--fg);border:1px solid var(--line)}" +
    ".consent{display:flex;gap:6px;align-items:flex-start;padding:8px 12px;font-size:13px;border-top:1px solid var(--line)}" +
    "form .tool{background:var(--bg);color:var(--fg);border:1px solid var(--line);padding:0 9px}" +
    "form .tool[aria-pressed=true]{background:#c62828;color:#fff;border-color:#c62828}" +
    ".attached{display:flex;flex-wrap:wrap;gap:6px;padding:0 10px}" +
    ".attached figure{position:relative;margin:0}" +
    ".attached img,.msg img{width:56px;height:56px;object-fit:cover;border-radius:6px;display:block}" +
    ".msg .images{display:flex;gap:4px;margin-top:4px}" +
    ".attached button{position:absolute;top:-6px;right:-6px;width:22px;height:22px;border-radius:50%;border:0;background:#1d1d1f;color:#fff;cursor:pointer;padding:0}" +
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}" +
    ":focus-visible{outline:3px solid var(--a,#ffbf47);outline-offset:2px}" +
    "</style>" +
    '<button class="bubble" type="button" aria-label="Open chat" aria-expanded="false">' +
    '<svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true"><path fill="currentColor" ' +
    'd="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg></button>' +
    '<section class="panel" role="dialog" aria-modal="false" hidden>' +
    '<header><img class="avatar" alt="" hidden><h2></h2><button class="erase" type="button">Erase chat</button>' +
    '<button class="close" type="button" aria-label="Close chat">&#x2715;</button></header>' +
    '<div class="log" role="log" aria-live="polite"></div>' +
    '<div class="chips" role="group" aria-label="Suggested questions"></div>' +
    '<label class="consent" hidden><input type="checkbox"><span></span></label>' +
    '<div class="attached" role="group" aria-label="Images to send"></div>' +
    '<form><label style="flex:1;display:flex"><span hidden>Your message</span>' +
    '<textarea rows="2" aria-label="Your message" placeholder="Type your message"></textarea></label>' +
    '<button class="tool mic" type="button" aria-label="Record a voice message" aria-pressed="false" hidden>' + MIC + "</button>" +
    '<button class="tool attach" type="button" aria-label="Attach an image" hidden>' + CLIP + "</button>" +
    '<input class="files" type="file" multiple hidden aria-hidden="true" tabindex="-1">' +
    '<button type="submit">Send</button><button class="stop" type="button" hidden>Stop</button></form>' +
    '<div class="sr status" role="status" aria-live="polite"></div>' +
    "</section>";
  var $ = function (selector) { return root.querySelector(selector); };
  var bubble = $(".bubble"), panel = $(".panel"), log = $(".log"), chips = $(".chips");
  var form = $("form"), input = $("textarea"), send = $("form button[type=submit]"), stop = $(".stop");
  var consent = $(".consent"), consentBox = $(".consent input");
  var mic = $(".mic"), attach = $(".attach"), fileInput = $(".files"), attachedBox = $(".attached");
  var status = $(".status");
  var launcherIcon = bubble.innerHTML;

  // The look a page's options (and the deployment's, under them) give the widget; applied again when the
  // deployment's arrive.
  function brand(o) {
    var title = o.title || "Chat with us";
    host.style.setProperty("--c", o.color || "#0b5fff");
    host.style.setProperty("--t", o.textColor || "#ffffff");
    ["accent", "font"].forEach(function (name) {
      if (o[name]) host.style.setProperty(name === "accent" ? "--a" : "--font", o[name]);
      else host.style.removeProperty(name === "accent" ? "--a" : "--font");
    });
    host.dataset.theme = ["dark", "auto"].indexOf(o.theme) >= 0 ? o.theme : "light";
    host.dataset.position = o.position === "left" ? "left" : "right";
    $("header h2").textContent = title;
    panel.setAttribute("aria-label", title);
    input.placeholder = o.placeholder || "Type your message";
    $(".avatar").hidden = !o.avatar;
    if (o.avatar) $(".avatar").src = o.avatar;
    bubble.innerHTML = launcherIcon;
    if (o.launcherIcon) {
      var icon = document.createElement("img");
      icon.src = o.launcherIcon;
      icon.alt = "";
      bubble.replaceChild(icon, bubble.querySelector("svg"));
    }
    bubble.classList.toggle("labelled", !!o.launcherLabel);
    bubble.setAttribute("aria-label", o.launcherLabel || "Open chat");
    if (o.launcherLabel) {
      var label = document.createElement("span");
      label.textContent = o.launcherLabel;
      bubble.appendChild(label);
    }
  }
  brand(options);

  // The animated trigger: the launcher pulses (or slides in) once, after a delay or a scroll depth.
  if (options.trigger === "pulse" || options.trigger === "slide") {
    if (options.trigger === "slide") bubble.classList.add("pending");
    var fired = false;
    var fire = function () {
      if (fired) return;
      fired = true;
      window.removeEventListener("scroll", onScroll);
      bubble.classList.remove("pending");
      if (panel.hidden) bubble.classList.add("attention", options.trigger);
    };
    var depth = Number(options.triggerScroll);
    var onScroll = function () {
      var page = document.documentElement;
      var seen = (window.scrollY + window.innerHeight) / Math.max(page.scrollHeight, 1) * 100;
      if (seen >= depth) fire();
    };
    if (depth > 0) window.addEventListener("scroll", onScroll, { passive: true });
    if (options.triggerAfter !== undefined || !(depth > 0)) setTimeout(fire, (Number(options.triggerAfter) || 0) * 1000);
  }

  function opening() {
    return options.greeting || (config && config.openingStatement) || "";
  }

  var config = null;
  var started = false;
  var sending = false;
  var current = null;  // the turn being answered

  if (consentText) {
    consent.hidden = false;
    $(".consent span").textContent = consentText;
    if (options.privacyUrl && /^https?:/i.test(options.privacyUrl)) {
      var privacy = document.createElement("a");
      privacy.href = options.privacyUrl;
      privacy.target = "_blank";
      privacy.rel = "noopener";
      privacy.textContent = options.privacyLabel || "Privacy notice";
      $(".consent span").append(" ", privacy);
    }
    consentBox.checked = load("consent") === "yes";
    $(".erase").textContent = "Forget me";
    consentBox.addEventListener("change", function () {
      save("consent", consentBox.checked ? "yes" : null);
      if (!consentBox.checked) discardRecording();
      if (agreed() && !panel.hidden) start();
      updateSend();
    });
  }

  function agreed() {
    return !consentText || consentBox.checked;
  }

  function updateSend() {
    var needsConsent = !agreed();
    var uploading = attachments.some(function (image) { return !image.fileId; });
    send.disabled = sending || uploading || !!needsConsent;
    send.title = needsConsent ? "Please accept the terms first" : "";
    mic.disabled = attach.disabled = !!needsConsent || transcribing;
  }

  function features() {
    return (config && config.features) || {};
  }

  // The microphone and the attach button, where the app takes voice and images and the browser can do it.
  function showMediaTools() {
    var canRecord = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && (MP4 || window.AudioContext || window.webkitAudioContext));
    mic.hidden = !(features().speechToText && options.voice !== "off" && canRecord);
    var images = features().images;
    attach.hidden = !(images && options.images !== "off");
    if (images) fileInput.accept = images.types.join(",");
  }

  // --- voice messages -------------------------------------------------------------------------------
  // Dify's audio-to-text takes MP4 audio (m4a) and WAV in every release, WebM no longer: MediaRecorder records
  // MP4 where the browser can (Safari, current Chrome); elsewhere (Firefox) the widget writes 16 kHz mono WAV.

  var MAX_RECORDING_S = 60, WAV_RATE = 16000;
  var MP4 = window.MediaRecorder && MediaRecorder.isTypeSupported && MediaRecorder.isTypeSupported("audio/mp4") ? "audio/mp4" : null;
  var recording = null, transcribing = false;

  function Mp4Recording(stream) {
    var chunks = this.chunks = [];
    this.stream = stream;
    this.recorder = new MediaRecorder(stream, { mimeType: MP4 });
    this.recorder.ondataavailable = function (event) { if (event.data.size) chunks.push(event.data); };
    this.recorder.start();
  }
  Mp4Recording.prototype.stop = function () {
    var self = this;
    return new Promise(function (resolve) {
      self.recorder.onstop = function () {
        self.stream.getTracks().forEach(function (track) { track.stop(); });
        resolve(new Blob(self.chunks, { type: MP4 }));
      };
      self.recorder.stop();
    });
  };

  function WavRecording(stream) {
    var Context = window.AudioContext || window.webkitAudioContext;
    var chunks = this.chunks = [];
    this.stream = stream;
    this.context = new Context();
    this.source = this.context.createMediaStreamSource(stream);
    this.processor = this.context.createScriptProcessor(4096, 1, 1);
    this.processor.onaudioprocess = function (event) {
      chunks.push(new Float32Array(event.inputBuffer.getChannelData(0)));
    };
    this.source.connect(this.processor);
    this.processor.connect(this.context.destination);
    if (this.context.resume) this.context.resume();
  }
  WavRecording.prototype.stop = function () {
    this.processor.disconnect();
    this.source.disconnect();
    this.stream.getTracks().forEach(function (track) { track.stop(); });
    var rate = this.context.sampleRate;
    this.context.close();
    return Promise.resolve(wav(this.chunks, rate, Math.min(WAV_RATE, rate)));
  };

  function wav(chunks, from, to) {
    var length = chunks.reduce(function (n, chunk) { return n + chunk.length; }, 0);
    var samples = new Float32Array(length), offset = 0;
    chunks.forEach(function (chunk) { samples.set(chunk, offset); offset += chunk.length; });
    var step = from / to, count = Math.floor(length / step);
    var view = new DataView(new ArrayBuffer(44 + count * 2));
    var text = function (at, value) {
      for (var i = 0; i < value.length; i++) view.setUint8(at + i, value.charCodeAt(i));
    };
    text(0, "RIFF"); view.setUint32(4, 36 + count * 2, true); text(8, "WAVE");
    text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, to, true); view.setUint32(28, to * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
    text(36, "data"); view.setUint32(40, count * 2, true);
    for (var i = 0; i < count; i++) {
      // Each sample the mean of the ones it stands for: a simple low-pass before dropping the rest.
      var first = Math.floor(i * step), last = Math.max(first + 1, Math.floor((i + 1) * step)), sum = 0;
      for (var j = first; j < last; j++) sum += samples[j];
      var value = Math.max(-1, Math.min(1, sum / (last - first)));
      view.setInt16(44 + i * 2, value < 0 ? value * 0x8000 : value * 0x7fff, true);
    }
    return new Blob([view.buffer], { type: "audio/wav" });
  }

  function toggleRecording() {
    if (recording === "pending") return;  // the browser is still asking for the microphone
    if (recording) return finishRecording();
    if (!agreed() || transcribing) return;
    recording = "pending";
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      if (recording !== "pending") {  // discarded (consent withdrawn, chat erased) while the browser asked
        stream.getTracks().forEach(function (track) { track.stop(); });
        return;
      }
      recording = MP4 ? new Mp4Recording(stream) : new WavRecording(stream);
      recording.timer = setTimeout(finishRecording, MAX_RECORDING_S * 1000);
      mic.setAttribute("aria-pressed", "true");
      mic.setAttribute("aria-label", "Stop recording");
      status.textContent = MESSAGES.recording;
    }, function () {
      recording = null;
      notice(new RelayError("microphone", MESSAGES.microphone));
    });
  }

  function endRecording() {
    var done = recording;
    recording = null;
    mic.setAttribute("aria-pressed", "false");
    mic.setAttribute("aria-label", "Record a voice message");
    if (!done || done === "pending") return null;
    clearTimeout(done.timer);
    return done.stop();
  }

  // Consent withdrawn or the chat erased: the recording stops and goes nowhere.
  function discardRecording() {
    endRecording();
    status.textContent = "";
  }

  function finishRecording() {
    if (!recording || recording === "pending") return;
    var audio = endRecording();
    if (!agreed()) return;
    var mine = epoch;
    transcribing = true;
    updateSend();
    status.textContent = "Turning your voice message into text…";
    queued(function () { return audio.then(function (blob) { return upload("/audio", blob); }); }).then(function (data) {
      if (mine !== epoch) return;  // the chat was erased meanwhile
      save("session", data.sessionId);
      input.value = (input.value.trim() ? input.value.trim() + " " : "") + data.text;
      status.textContent = "Your voice message is in the message box: edit it, then send it.";
    }, function (error) {
      status.textContent = "";
      notice(error);
    }).then(function () {
      transcribing = false;
      updateSend();
      input.focus();
    });
  }

  // Uploads one after another (and after a first turn still being answered): the first may start the
  // session the ones after it join. `epoch` counts erasures: an answer to a call made before one is dropped.
  var uploads = Promise.resolve(), epoch = 0;
  function queued(task) {
    var result = uploads.then(task);
    uploads = result.catch(function () {});
    return result;
  }

  // --- images for the next message ------------------------------------------------------------------

  var attachments = [];  // {url, fileId (null while it uploads)}

  function attachImages() {
    var images = features().images;
    var files = Array.prototype.slice.call(fileInput.files || []);
    fileInput.value = "";
    if (!images) return;
    files.forEach(function (file) {
      if (attachments.length >= images.maxFiles) {
        return notice(new RelayError("invalid", MESSAGES.tooManyImages.replace("{n}", images.maxFiles)));
      }
      if (images.types.indexOf(file.type) < 0) {
        var names = images.types.map(function (type) { return type.split("/")[1].toUpperCase(); }).join(", ");
        return notice(new RelayError("invalid", MESSAGES.imageType.replace("{t}", names)));
      }
      if (file.size > images.maxBytes) {
        return notice(new RelayError("invalid", MESSAGES.imageSize.replace("{mb}", (images.maxBytes / 1048576).toFixed(1))));
      }
      var image = { url: URL.createObjectURL(file), fileId: null }, mine = epoch;
      attachments.push(image);
      showAttachments();
      queued(function () { return upload("/files", file); }).then(function (data) {
        if (mine !== epoch) return;
        save("session", data.sessionId);
        image.fileId = data.fileId;
        showAttachments();
      }, function (error) {
        removeAttachment(image);
        notice(error);
      });
    });
  }

  function removeAttachment(image) {
    attachments = attachments.filter(function (other) { return other !== image; });
    showAttachments();
  }

  function showAttachments() {
    attachedBox.textContent = "";
    attachments.forEach(function (image, index) {
      var figure = document.createElement("figure");
      var preview = document.createElement("img");
      preview.src = image.url;
      preview.alt = "Image " + (index + 1) + (image.fileId ? " to send" : ", uploading");
      var remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "\u2715";
      remove.setAttribute("aria-label", "Remove image " + (index + 1));
      remove.addEventListener("click", function () { removeAttachment(image); attach.focus(); });
      figure.append(preview, remove);
      attachedBox.appendChild(figure);
    });
    updateSend();
  }

  // --- answers read aloud -----------------------------------------------------------------------------

  var reading = null;  // {button, audio}

  function readAloud(button, messageId) {
    var same = reading && reading.button === button;
    stopReading();
    if (same) return;
    // The element is made within the click, so browsers that want a gesture for playback (Safari) allow it.
    var current = reading = { button: button, audio: new Audio(), url: null };
    button.setAttribute("aria-pressed", "true");
    fetch(api + "/speech", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "audio/mpeg" },
      body: JSON.stringify({ sessionId: load("session"), messageId: messageId }),
    }).then(function (response) {
      if (response.ok) return response.blob();
      return response.json().catch(function () { return {}; }).then(function (data) {
        throw describe(response, (data && data.error) || {});
      });
    }).then(function (audio) {
      if (reading !== current) return;
      current.url = current.audio.src = URL.createObjectURL(audio);
      current.audio.addEventListener("ended", function () { if (reading === current) stopReading(); });
      return current.audio.play();
    }).catch(function (error) {
      if (reading === current) stopReading();
      notice(error instanceof RelayError ? error : null);
    });
  }

  function stopReading() {
    if (!reading) return;
    reading.audio.pause();
    if (reading.url) URL.revokeObjectURL(reading.url);
    reading.button.setAttribute("aria-pressed", "false");
    reading = null;
  }

  function add(kind, text) {
    var item = document.createElement("div");
    item.className = "msg " + kind;
    item.appendChild(document.createTextNode(text));
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  function addQuestion(text, images) {
    var item = add("visitor", text);
    if (images && images.length) {
      var row = document.createElement("div");
      row.className = "images";
      images.forEach(function (image, index) {
        var preview = document.createElement("img");
        preview.src = image.url;
        preview.alt = "Image " + (index + 1) + " you sent";
        row.appendChild(preview);
      });
      item.appendChild(row);
    }
    return item;
  }

  function addAnswer(text, messageId) {
    return addTools(add("assistant", text), messageId);
  }

  function addTools(item, messageId) {
    var rates = features().feedback, speaks = features().textToSpeech && options.speech !== "off";
    if (!messageId || !(rates || speaks)) return item;
    var tools = document.createElement("div");
    tools.className = "tools";
    if (rates) {
      [["like", THUMB, "Helpful"], ["dislike", THUMB.replace("<svg", '<svg style="transform:scaleY(-1)"'), "Not helpful"]].forEach(function (spec) {
        var button = document.createElement("button");
        button.type = "button";
        button.innerHTML = spec[1];
        button.setAttribute("aria-label", spec[2]);
        button.setAttribute("aria-pressed", "false");
        button.dataset.rating = spec[0];
        button.addEventListener("click", function () { rate(tools, button, messageId); });
        tools.appendChild(button);
      });
    }
    if (speaks) {
      var listen = document.createElement("button");
      listen.type = "button";
      listen.className = "listen";
      listen.innerHTML = SPEAKER;
      listen.setAttribute("aria-label", "Read aloud");
      listen.setAttribute("aria-pressed", "false");
      listen.addEventListener("click", function () { readAloud(listen, messageId); });
      tools.appendChild(listen);
    }
    item.appendChild(tools);
    return item;
  }

  function rate(tools, button, messageId) {
    var pressed = button.getAttribute("aria-pressed") === "true";
    var rating = pressed ? null : button.dataset.rating;
    call("POST", "/feedback", { sessionId: load("session"), messageId: messageId, rating: rating }).then(function () {
      tools.querySelectorAll("button[data-rating]").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b === button && !pressed));
      });
    }, notice);
  }

  function notice(error) {
    add("notice", error && error.text ? error.text : MESSAGES.unavailable);
  }

  function showChips(questions) {
    chips.textContent = "";
    (questions || []).forEach(function (question) {
      var chip = document.createElement("button");
      chip.type = "button";
      chip.textContent = question;
      chip.addEventListener("click", function () { ask(question); });
      chips.appendChild(chip);
    });
  }

  // The whole conversation, oldest first: the relay sends the latest page, and older ones on request.
  var HISTORY_PAGE = 100, HISTORY_PAGES = 10;
  function restore(session, before, pages) {
    var path = "/history?limit=" + HISTORY_PAGE + "&sessionId=" + encodeURIComponent(session) +
      (before ? "&before=" + encodeURIComponent(before) : "");
    return call("GET", path).then(function (page) {
      var oldest = page.turns.length && page.turns[0].messageId;
      if (!page.hasMore || !oldest || pages >= HISTORY_PAGES) return page.turns;
      // An older page that fails to arrive costs only the turns before it.
      return restore(session, oldest, pages + 1).then(
        function (older) { return older.concat(page.turns); },
        function () { return page.turns; }
      );
    });
  }

  function start() {
    if (started || !agreed()) return;
    started = true;
    call("GET", "/config").then(function (data) {
      config = data;
      save("branding", JSON.stringify(data.branding || {}));
      options = Object.assign({}, data.branding, pageOptions);
      brand(options);
      showMediaTools();
      var session = load("session");
      if (!session) {
        if (opening()) add("assistant", opening());
        showChips(data.starterQuestions);
        return;
      }
      return restore(session, null, 1).then(function (turns) {
        if (!turns.length && opening()) add("assistant", opening());
        turns.forEach(function (turn) {
          addQuestion(turn.question);
          addAnswer(turn.answer, turn.messageId);
        });
      });
    }).catch(function (error) {
      started = false;
      notice(error);
    });
  }

  // An answer on screen as it is written: its bubble appears with the first event, and text only ever grows
  // at its end (or is replaced whole), so nothing above it moves.
  function Turn() {
    this.item = null;
    this.text = "";
    this.stopped = false;
  }
  Turn.prototype.begin = function (start) {
    this.start = start;
    save("session", start.sessionId);
    this.item = add("assistant", "");
    this.item.setAttribute("aria-busy", "true");
    stop.hidden = false;
  };
  Turn.prototype.write = function (text) {
    var following = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    this.text = text;
    this.item.firstChild.data = text;
    if (following) log.scrollTop = log.scrollHeight;  // a visitor who scrolled up to read stays put
  };
  Turn.prototype.finish = function (messageId) {
    stop.hidden = true;
    if (!this.item) return;
    this.item.removeAttribute("aria-busy");
    addTools(this.item, messageId);
  };

  function stopAnswer() {
    var turn = current;
    if (!turn || !turn.item || turn.stopped) return;
    turn.stopped = true;
    turn.controller.abort();
    if (turn.start.taskId) {
      call("POST", "/chat/stop", { sessionId: turn.start.sessionId, taskId: turn.start.taskId }).catch(function () {});
    }
    turn.finish(turn.start.messageId);
    add("notice", MESSAGES.stopped);
  }

  function postTurn(body, key) {
    var post = function () { return call("POST", "/chat", body, { "Idempotency-Key": key }); };
    return post().catch(function (error) {
      // One quiet retry on a dropped connection: the Idempotency-Key makes it safe.
      if (error.kind === "offline" && navigator.onLine !== false) return post();
      throw error;
    });
  }

  function ask(text) {
    text = (text || "").trim();
    if (!text || sending) return;
    if (!agreed()) {
      add("notice", "Please tick the box below before your first message.");
      return;
    }
    if (attachments.some(function (image) { return !image.fileId; })) return;
    showChips([]);
    var images = attachments;
    attachments = [];
    showAttachments();
    addQuestion(text, images);
    input.value = "";
    status.textContent = "";
    sending = true;
    updateSend();
    var body = { message: text };
    var session = load("session");
    if (session) body.sessionId = session;
    if (images.length) body.files = images.map(function (image) { return image.fileId; });
    var key = newKey();
    var turn = current = new Turn();
    var answered = !streaming ? postTurn(body, key) : streamTurn(body, key, turn).catch(function (error) {
      if (!error.fallback) throw error;
      return postTurn(body, key);
    });
    var finished = answered.then(function (answer) {
      if (!answer) return;  // stopped: what was written stays
      save("session", answer.sessionId);
      if (turn.item) {
        turn.write(answer.answer);
        turn.finish(answer.messageId);
      } else {
        addAnswer(answer.answer, answer.messageId);
      }
      if (config && config.features && config.features.suggestions && answer.messageId) {
        var query = "?sessionId=" + encodeURIComponent(answer.sessionId) + "&messageId=" + encodeURIComponent(answer.messageId);
        call("GET", "/suggested" + query).then(function (data) { showChips(data.questions); }, function () {});
      }
    }, function (error) {
      if (!turn.stopped) turn.finish(turn.start && turn.start.messageId);
      notice(error);
    }).then(function () {
      current = null;
      stop.hidden = true;
      sending = false;
      updateSend();
      input.focus();
    });
    if (!session) queued(function () { return finished; });  // its answer starts the session
  }

  function erase() {
    var session = load("session");
    epoch += 1;
    discardRecording();
    var done = function () {
      save("session", null);
      log.textContent = "";
      attachments = [];
      showAttachments();
      stopReading();
      if (consentText) {  // forgetting the visitor forgets the consent too
        save("consent", null);
        consentBox.checked = false;
      }
      if (config) {
        if (opening()) add("assistant", opening());
        showChips(config.starterQuestions);
      }
      updateSend();
    };
    if (!session) return done();
    call("DELETE", "/session", { sessionId: session }).then(done, notice);
  }

  function open() {
    bubble.classList.remove("attention");
    panel.hidden = false;
    bubble.setAttribute("aria-expanded", "true");
    start();
    updateSend();
    input.focus();
  }
  function close() {
    panel.hidden = true;
    bubble.setAttribute("aria-expanded", "false");
    bubble.focus();
  }

  bubble.addEventListener("click", function () { panel.hidden ? open() : close(); });
  $(".close").addEventListener("click", close);
  $(".erase").addEventListener("click", erase);
  stop.addEventListener("click", stopAnswer);
  mic.addEventListener("click", toggleRecording);
  attach.addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", attachImages);
  panel.addEventListener("keydown", function (event) { if (event.key === "Escape") close(); });
  form.addEventListener("submit", function (event) { event.preventDefault(); ask(input.value); });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); ask(input.value); }
  });

  (document.body || document.documentElement).appendChild(host);
})();
