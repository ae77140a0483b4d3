/*
 * Dify Relay chat widget: one <script> tag, no build step, no third-party requests.
 *
 *   <script src="relay-widget.js" data-relay-url="https://abc.execute-api.eu-west-1.amazonaws.com/live"
 *           data-title="Ask us" data-color="#0b5fff" data-consent="I agree to the chat terms." defer></script>
 *
 * data-relay-url (required): the relay's base URL (the stack's ApiUrl output, without /v1).
 * Branding: data-title, data-color (primary), data-text-color (text on it), data-accent (focus ring and chips),
 *   data-theme (light, dark or auto: the visitor's system setting), data-position (right or left),
 *   data-launcher-label (text on the launcher), data-launcher-icon and data-avatar (image URLs), data-greeting
 *   (instead of the app's opening statement), data-placeholder, data-font (a CSS font-family).
 * Animated trigger: data-trigger (pulse, or slide: the launcher slides in), after data-trigger-after seconds or
 *   once the page is scrolled data-trigger-scroll percent; none when the visitor prefers reduced motion.
 * Every option may also come from window.DifyRelayConfig ({relayUrl, title, color, ...}); data-* wins.
 * data-consent: when set, nothing reaches the relay (no history, no message) until the visitor ticks a checkbox
 *   with this text (and a link to data-privacy-url, when given); the choice is remembered, and "Forget me"
 *   erases the conversation and the choice.
 * data-stream="off": ask for whole answers (POST /v1/chat) instead of streamed ones (POST /v1/chat/stream).
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var options = Object.assign({}, window.DifyRelayConfig || {}, (script && script.dataset) || {});
  var base = (options.relayUrl || "").replace(/\/+$/, "");
  if (!base) {
    console.error("relay-widget: data-relay-url is required");
    return;
  }
  var title = options.title || "Chat with us";
  var color = options.color || "#0b5fff";
  var textColor = options.textColor || "#ffffff";
  var consentText = options.consent || "";
  var streaming = options.stream !== "off" && !!(window.ReadableStream && window.AbortController && window.TextDecoder);
  var storeKey = "dify-relay:" + base;

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
  };

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
    return fetch(base + path, options).then(function (response) {
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
    return fetch(base + "/v1/chat/stream", {
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
    if (error.code === "invalid_request" || error.code === "message_too_long" || error.code === "request_too_large")
      return new RelayError("invalid", MESSAGES.invalid.replace("{m}", error.message || ""));
    if (error.retryable) return new RelayError("busy", MESSAGES.busy);
    return new RelayError("unavailable", MESSAGES.unavailable);
  }

  // --- the interface -------------------------------------------------------------------------------

  var host = document.createElement("div");
  host.className = "dify-relay-widget";
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
    ":focus-visible{outline:3px solid var(--a,#ffbf47);outline-offset:2px}" +
    "</style>" +
    '<button class="bubble" type="button" aria-label="Open chat" aria-expanded="false">' +
    '<svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true"><path fill="currentColor" ' +
    'd="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg></button>' +
    '<section class="panel" role="dialog" aria-modal="false" hidden>' +
    '<header><img class="avatar" alt="" hidden><h2></h2><button class="erase" type="button">Erase chat</button>' +
    '<button class="close" type="button" aria-label="Close chat">&#x2715;</button></header>' +
    '<div class="log" role="log" aria-live="polite"></div>' +
    '<div class="chips" aria-label="Suggested questions"></div>' +
    '<label class="consent" hidden><input type="checkbox"><span></span></label>' +
    '<form><label style="flex:1;display:flex"><span hidden>Your message</span>' +
    '<textarea rows="2" aria-label="Your message" placeholder="Type your message"></textarea></label>' +
    '<button type="submit">Send</button><button class="stop" type="button" hidden>Stop</button></form>' +
    "</section>";
  host.style.setProperty("--c", color);
  host.style.setProperty("--t", textColor);
  if (options.accent) host.style.setProperty("--a", options.accent);
  if (options.font) host.style.setProperty("--font", options.font);
  host.dataset.theme = ["dark", "auto"].indexOf(options.theme) >= 0 ? options.theme : "light";
  host.dataset.position = options.position === "left" ? "left" : "right";

  var $ = function (selector) { return root.querySelector(selector); };
  var bubble = $(".bubble"), panel = $(".panel"), log = $(".log"), chips = $(".chips");
  var form = $("form"), input = $("textarea"), send = $("form button"), stop = $(".stop");
  var consent = $(".consent"), consentBox = $(".consent input");
  $("header h2").textContent = title;
  panel.setAttribute("aria-label", title);
  if (options.placeholder) input.placeholder = options.placeholder;
  if (options.avatar) {
    $(".avatar").src = options.avatar;
    $(".avatar").hidden = false;
  }
  if (options.launcherIcon) {
    var icon = document.createElement("img");
    icon.src = options.launcherIcon;
    icon.alt = "";
    bubble.replaceChild(icon, bubble.querySelector("svg"));
  }
  if (options.launcherLabel) {
    var label = document.createElement("span");
    label.textContent = options.launcherLabel;
    bubble.appendChild(label);
    bubble.classList.add("labelled");
    bubble.setAttribute("aria-label", options.launcherLabel);
  }

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
      if (agreed() && !panel.hidden) start();
      updateSend();
    });
  }

  function agreed() {
    return !consentText || consentBox.checked;
  }

  function updateSend() {
    var needsConsent = !agreed();
    send.disabled = sending || !!needsConsent;
    send.title = needsConsent ? "Please accept the terms first" : "";
  }

  function add(kind, text) {
    var item = document.createElement("div");
    item.className = "msg " + kind;
    item.appendChild(document.createTextNode(text));
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  function addAnswer(text, messageId) {
    return addTools(add("assistant", text), messageId);
  }

  function addTools(item, messageId) {
    if (messageId && config && config.features && config.features.feedback) {
      var tools = document.createElement("div");
      tools.className = "tools";
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
      item.appendChild(tools);
    }
    return item;
  }

  function rate(tools, button, messageId) {
    var pressed = button.getAttribute("aria-pressed") === "true";
    var rating = pressed ? null : button.dataset.rating;
    call("POST", "/v1/feedback", { sessionId: load("session"), messageId: messageId, rating: rating }).then(function () {
      tools.querySelectorAll("button").forEach(function (b) {
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
    var path = "/v1/history?limit=" + HISTORY_PAGE + "&sessionId=" + encodeURIComponent(session) +
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
    call("GET", "/v1/config").then(function (data) {
      config = data;
      var session = load("session");
      if (!session) {
        if (opening()) add("assistant", opening());
        showChips(data.starterQuestions);
        return;
      }
      return restore(session, null, 1).then(function (turns) {
        if (!turns.length && opening()) add("assistant", opening());
        turns.forEach(function (turn) {
          add("visitor", turn.question);
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
      call("POST", "/v1/chat/stop", { sessionId: turn.start.sessionId, taskId: turn.start.taskId }).catch(function () {});
    }
    turn.finish(turn.start.messageId);
    add("notice", MESSAGES.stopped);
  }

  function postTurn(body, key) {
    var post = function () { return call("POST", "/v1/chat", body, { "Idempotency-Key": key }); };
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
    showChips([]);
    add("visitor", text);
    input.value = "";
    sending = true;
    updateSend();
    var body = { message: text };
    var session = load("session");
    if (session) body.sessionId = session;
    var key = newKey();
    var turn = current = new Turn();
    var answered = !streaming ? postTurn(body, key) : streamTurn(body, key, turn).catch(function (error) {
      if (!error.fallback) throw error;
      return postTurn(body, key);
    });
    answered.then(function (answer) {
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
        call("GET", "/v1/suggested" + query).then(function (data) { showChips(data.questions); }, function () {});
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
  }

  function erase() {
    var session = load("session");
    var done = function () {
      save("session", null);
      log.textContent = "";
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
    call("DELETE", "/v1/session", { sessionId: session }).then(done, notice);
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
  panel.addEventListener("keydown", function (event) { if (event.key === "Escape") close(); });
  form.addEventListener("submit", function (event) { event.preventDefault(); ask(input.value); });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); ask(input.value); }
  });

  (document.body || document.documentElement).appendChild(host);
})();
