"""The reference widget in a real headless Chromium: the demo page on one localhost origin, the relay (with
its Dify simulator) on another, exactly as `make local` serves them."""

import json
import os
import shutil
import urllib.error
import urllib.request

import pytest

from tests.support import ROOT, free_port, local_server, png_bytes, wav_bytes

# One Chromium and one `make local` for the module: under pytest-xdist its tests stay on one worker.
pytestmark = pytest.mark.xdist_group("browser")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
# The default app's widget; the demo page also embeds one for the simulated sales app (data-app="sales").
SHADOW = "document.querySelector('.dify-relay-widget:not([data-app])').shadowRoot"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def servers():
    demo_port = free_port()
    env = {
        "ALLOWED_ORIGINS": f"http://localhost:{demo_port}",
        "DEMO_CONSENT": "I agree that this chat is stored.",
        # A long conversation is seeded at full speed; budgets are the integration tests' subject.
        "RATE_LIMIT_SESSION_PER_MINUTE": "0",
        "RATE_LIMIT_IP_PER_MINUTE": "0",
        # Streamed answers come 8 characters every 50 ms, so a long one takes seconds to write.
        "SIMULATED_STREAM_DELAY": "0.05",
        # The deployment's branding for every page; the demo page sets neither option itself.
        "WIDGET_BRANDING": json.dumps({"placeholder": "Ask the demo team", "accent": "rgb(255, 140, 0)"}),
    }
    with local_server(env, demo_port=demo_port) as relay:
        yield {
            "allowed": f"http://localhost:{demo_port}/",
            "other": f"http://127.0.0.1:{demo_port}/",
            "relay": relay,
        }


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    assert os.path.exists(CHROMIUM), "Chromium is missing: `make test` installs it (Debian package chromium)"
    from playwright.sync_api import sync_playwright

    # The fake microphone plays a WAV file (a tone) to any page that asks for it.
    voice = tmp_path_factory.mktemp("microphone") / "voice.wav"
    voice.write_bytes(wav_bytes(seconds=3, rate=48_000))
    microphone = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={voice}",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS + microphone
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def open_chat(page):
    page.click(".bubble")
    page.wait_for_selector(".panel:not([hidden])")


def test_a_visitor_chats_rates_reloads_and_erases(page, servers):
    page.goto(servers["allowed"])
    open_chat(page)
    assert page.is_disabled("button[type=submit]")  # consent first
    page.check(".consent input")
    page.wait_for_selector(".assistant >> text=Hello! How can I help?")
    page.fill("textarea", "Hello from the browser")
    page.keyboard.press("Enter")
    page.wait_for_selector(".assistant >> text=Turn 1: you said 'Hello from the browser'")
    page.wait_for_selector(".chips button")  # follow-up suggestions arrived

    with page.expect_response("**/v1/feedback") as feedback:
        page.click("button[aria-label=Helpful]")
    assert feedback.value.status == 200
    page.wait_for_selector("button[aria-label=Helpful][aria-pressed=true]")

    page.fill("textarea", "And a second question")
    page.click("button[type=submit]")
    page.wait_for_selector(".assistant >> text=Turn 2: you said 'And a second question'")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-conversation.png"))

    page.reload()
    open_chat(page)
    page.wait_for_selector(".assistant >> text=Turn 2: you said 'And a second question'")
    assert page.locator(".visitor").all_inner_texts() == ["Hello from the browser", "And a second question"]

    with page.expect_response("**/v1/session") as erased:
        page.click(".erase >> text=Forget me")
    assert erased.value.status == 204
    page.wait_for_function(f"() => !{SHADOW}.querySelector('.visitor')")
    stored = "() => Object.keys(localStorage).filter(k => k.endsWith(':session') || k.endsWith(':consent'))"
    assert page.evaluate(stored) == []  # the conversation and the consent are both forgotten
    page.reload()
    open_chat(page)
    assert not page.is_checked(".consent input")
    page.check(".consent input")
    page.wait_for_selector(".assistant >> text=Hello! How can I help?")
    assert page.locator(".visitor").count() == 0


def test_a_conversation_longer_than_a_history_page_comes_back_whole_and_in_order(page, servers):
    page.goto(servers["allowed"])
    open_chat(page)
    page.check(".consent input")
    page.fill("textarea", "turn 1")
    page.keyboard.press("Enter")
    page.wait_for_selector(".assistant >> text=Turn 1: you said 'turn 1'")
    [session] = page.evaluate(
        "() => Object.keys(localStorage).filter(k => k.endsWith(':session')).map(k => localStorage[k])"
    )
    origin = servers["allowed"].rstrip("/")
    for number in range(2, 131):  # more than one page of 100 turns
        body = json.dumps({"message": f"turn {number}", "sessionId": session}).encode()
        request = urllib.request.Request(
            servers["relay"] + "/v1/chat",
            data=body,
            headers={"Origin": origin, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as reply:
            assert reply.status == 200
    page.reload()
    open_chat(page)
    page.wait_for_selector(".assistant >> text=Turn 130: you said 'turn 130'")
    assert page.locator(".visitor").all_inner_texts() == [f"turn {n}" for n in range(1, 131)]


def test_the_widget_is_keyboard_accessible(page, servers):
    page.goto(servers["allowed"])
    page.focus(".bubble")
    page.keyboard.press("Enter")
    page.wait_for_selector(".panel:not([hidden])")
    assert page.evaluate(
        "() => document.querySelector('.dify-relay-widget').shadowRoot.activeElement.tagName"
    ) == ("TEXTAREA")
    page.keyboard.press("Escape")
    page.wait_for_selector(".panel", state="hidden")


def test_a_page_on_another_origin_cannot_use_the_relay(page, servers):
    page.goto(servers["other"])
    open_chat(page)
    page.check(".consent input")
    page.wait_for_selector(".notice >> text=The assistant could not be reached.")
    page.fill("textarea", "Can I use you from here?")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => {SHADOW}.querySelectorAll('.notice').length >= 2")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-other-origin.png"))
    assert page.locator(".assistant").count() == 0
    # The relay itself refused the origin; the browser only hid the refusal from the page.
    origin = servers["other"].rstrip("/")
    request = urllib.request.Request(
        servers["relay"] + "/v1/config", headers={"Origin": origin}, method="GET"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 403
    assert json.loads(refused.value.read())["error"]["code"] == "origin_not_allowed"


# About 40 streamed events, two seconds of writing: room to see it grow and to stop it on a busy machine.
LONG_QUESTION = (
    "Please tell me, branch by branch, when each of your shops opens and closes on weekdays and weekends,"
    " whether the opening hours change on public holidays or during the summer months, which branches"
    " have parking or step-free access, and who I should call when a branch closes earlier than it says"
)
LONG_ANSWER = f"Turn 1: you said '{LONG_QUESTION}'"
LAST_ANSWER = (
    f"() => {{ const a = [...{SHADOW}.querySelectorAll('.assistant')].pop();"
    " return a ? a.firstChild.data : ''; }"
)


def ask_long_question(page, servers):
    page.goto(servers["allowed"])
    open_chat(page)
    page.check(".consent input")
    page.fill("textarea", LONG_QUESTION)
    page.keyboard.press("Enter")


def test_an_answer_appears_word_by_word_before_the_app_has_finished_writing_it(page, servers):
    ask_long_question(page, servers)
    # Some of the answer is on screen while the simulated app is still writing the rest.
    half = len(LONG_ANSWER) // 2
    page.wait_for_function(
        f"() => {{ const t = ({LAST_ANSWER})(); return t.startsWith('Turn 1') && t.length < {half}; }}"
    )
    assert page.is_visible(".stop")
    page.wait_for_selector(f".assistant >> text={LONG_ANSWER}")
    page.wait_for_selector(".stop", state="hidden")
    page.wait_for_selector("button[aria-label=Helpful]")  # feedback works on a streamed answer


def test_stop_ends_the_answer_and_the_apps_run(page, servers):
    ask_long_question(page, servers)
    page.wait_for_function(f"() => ({LAST_ANSWER})().startsWith('Turn 1')")
    with page.expect_response("**/v1/chat/stop") as stopped:
        page.click(".stop")
    assert stopped.value.status == 200
    page.wait_for_selector(".notice >> text=Stopped.")
    shown = page.evaluate(LAST_ANSWER)
    page.wait_for_timeout(2_500)  # longer than the rest of the answer would take to write
    assert page.evaluate(LAST_ANSWER) == shown and len(shown) < len(LONG_ANSWER)
    # Dify stopped writing: the conversation keeps the answer as far as it got.
    page.reload()
    open_chat(page)
    page.wait_for_selector(f".visitor >> text={LONG_QUESTION}")
    restored = page.evaluate(LAST_ANSWER)
    assert restored.startswith("Turn 1") and len(restored) < len(LONG_ANSWER)


def test_the_widget_falls_back_to_whole_answers_when_streaming_fails_before_the_first_event(page, servers):
    page.route("**/v1/chat/stream", lambda route: route.abort())
    page.goto(servers["allowed"])
    open_chat(page)
    page.check(".consent input")
    page.fill("textarea", "Is anyone there?")
    with page.expect_response("**/v1/chat") as whole:
        page.keyboard.press("Enter")
    assert whole.value.status == 200
    page.wait_for_selector(".assistant >> text=Turn 1: you said 'Is anyone there?'")
    assert page.locator(".notice").count() == 0


def test_nothing_reaches_the_relay_before_the_visitor_consents(page, servers):
    relay_requests = []
    page.on(
        "request",
        lambda request: request.url.startswith(servers["relay"]) and relay_requests.append(request.url),
    )
    page.goto(servers["allowed"])
    open_chat(page)
    page.fill("textarea", "Hello before agreeing")
    page.keyboard.press("Enter")
    page.wait_for_timeout(1_000)
    assert relay_requests == [] and page.locator(".assistant").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-consent.png"))
    page.check(".consent input")
    page.wait_for_selector(".assistant >> text=Hello! How can I help?")
    assert [url.removeprefix(servers["relay"]) for url in relay_requests] == ["/v1/config"]
    # The choice is remembered: after a reload the chat starts without asking again.
    page.reload()
    open_chat(page)
    page.wait_for_selector(".assistant >> text=Hello! How can I help?")
    assert page.is_checked(".consent input")


def embed(page, servers, attributes: dict, config: dict | None = None) -> None:
    """The demo page with the widget embedded anew: `attributes` as data-*, `config` as DifyRelayConfig."""
    page.goto(servers["allowed"])
    page.wait_for_selector(".dify-relay-widget", state="attached")
    page.evaluate(
        """([attributes, config, relay]) => {
            document.querySelectorAll('.dify-relay-widget').forEach((widget) => widget.remove());
            if (config) window.DifyRelayConfig = config;
            const script = document.createElement('script');
            script.src = '/relay-widget.js?again';
            script.dataset.relayUrl = relay;
            Object.entries(attributes).forEach(([name, value]) => { script.dataset[name] = value; });
            document.body.appendChild(script);
        }""",
        [attributes, config, servers["relay"]],
    )
    page.wait_for_function("() => document.querySelector('.dify-relay-widget:not([data-app])')?.shadowRoot")


def style(page, selector: str, prop: str) -> str:
    return page.evaluate(f"() => getComputedStyle({SHADOW}.querySelector('{selector}'))['{prop}']")


def test_branding_attributes_and_the_config_object_shape_the_widget(page, servers):
    embed(
        page,
        servers,
        {
            "color": "rgb(200, 30, 90)",
            "theme": "dark",
            "position": "left",
            "launcherLabel": "Ask Ada",
            "greeting": "Hi, I am Ada.",
            "placeholder": "Ask about orders",
            "consent": "I agree that Ada keeps this chat.",
            "privacyUrl": "https://shop.example/privacy",
        },
        config={"font": "Georgia, serif", "title": "Ada from the shop"},
    )
    assert style(page, ".bubble", "backgroundColor") == "rgb(200, 30, 90)"
    assert style(page, ".bubble", "left") == "20px"
    assert page.get_attribute(".bubble", "aria-label") == "Ask Ada"
    assert page.inner_text(".bubble") == "Ask Ada"
    assert "Georgia" in style(page, ".bubble", "fontFamily")
    open_chat(page)
    assert style(page, ".panel", "backgroundColor") == "rgb(28, 28, 30)"  # dark
    assert page.inner_text("header h2") == "Ada from the shop"
    assert page.get_attribute("textarea", "placeholder") == "Ask about orders"
    assert page.inner_text(".consent span").startswith("I agree that Ada keeps this chat.")
    assert page.get_attribute(".consent a", "href") == "https://shop.example/privacy"
    page.check(".consent input")
    page.wait_for_selector(".assistant >> text=Hi, I am Ada.")
    assert (
        page.get_attribute("textarea", "placeholder") == "Ask about orders"
    )  # the page's over the deployment's
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-branded.png"))


def test_the_deployments_branding_styles_every_page_and_is_remembered(page, servers):
    page.goto(servers["allowed"])
    open_chat(page)
    assert page.get_attribute("textarea", "placeholder") == "Type your message"  # nothing asked yet
    agree_and_wait(page)
    assert page.get_attribute("textarea", "placeholder") == "Ask the demo team"
    relay_requests = []
    page.on("request", lambda r: r.url.startswith(servers["relay"]) and relay_requests.append(r.url))
    page.reload()
    page.wait_for_function(f"() => {SHADOW}.host.style.getPropertyValue('--a') === 'rgb(255, 140, 0)'")
    assert page.get_attribute("textarea", "placeholder") == "Ask the demo team"
    assert relay_requests == []  # remembered from the last visit: the launcher is branded before any request


@pytest.mark.parametrize("motion", ["no-preference", "reduce"])
def test_the_launcher_pulses_after_its_delay_unless_the_visitor_prefers_reduced_motion(
    browser, servers, motion
):
    context = browser.new_context(reduced_motion=motion)
    page = context.new_page()
    try:
        embed(page, servers, {"trigger": "pulse", "triggerAfter": "0.5"})
        assert style(page, ".bubble", "animationName") == "none"  # not yet
        page.wait_for_function(f"() => {SHADOW}.querySelector('.bubble').classList.contains('attention')")
        expected = "none" if motion == "reduce" else "pulse"
        assert style(page, ".bubble", "animationName") == expected
    finally:
        context.close()


AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"


def serious_accessibility_violations(page) -> list[str]:
    """axe-core's serious and critical findings on the page (the widget's shadow root included)."""
    assert AXE.exists(), "axe-core is missing: `make test` installs it (npm ci in tests/browser)"
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter(v => ['serious', 'critical'].includes(v.impact))
            .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"""
    )
    return found


def agree_and_wait(page):
    page.check(".consent input")
    page.wait_for_selector(".assistant >> text=Hello! How can I help?")


@pytest.fixture
def media_page(browser, servers):
    context = browser.new_context(permissions=["microphone"])
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(servers["allowed"])
    open_chat(page)
    agree_and_wait(page)
    yield page
    context.close()


# MediaRecorder records MP4 audio in this Chromium (as in Safari); without it (Firefox records only WebM and
# Ogg, which current Dify refuses) the widget writes WAV.
RECORDERS = {"mediarecorder-mp4": (b"ftyp", 4, 8), "web-audio-wav": (b"WAVE", 8, 12)}


@pytest.mark.parametrize("recorder", sorted(RECORDERS))
def test_a_voice_message_is_recorded_transcribed_edited_and_sent(media_page, recorder):
    page = media_page
    if recorder == "web-audio-wav":
        page.add_init_script("delete window.MediaRecorder")
        page.reload()
        open_chat(page)
        page.wait_for_selector(".assistant >> text=Hello! How can I help?")
    page.wait_for_selector("button[aria-label='Record a voice message']")
    page.click(".mic")
    page.wait_for_selector(".mic[aria-pressed=true][aria-label='Stop recording']")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-recording.png"))
    page.wait_for_timeout(1_200)
    with page.expect_request("**/v1/audio*") as sent, page.expect_response("**/v1/audio*") as heard:
        page.click(".mic")
    recording = sent.value.post_data_buffer
    signature, start, end = RECORDERS[recorder]
    assert recording[start:end] == signature
    assert len(recording) > (16_000 if recorder == "web-audio-wav" else 1_000)  # not an empty recording
    assert heard.value.status == 200
    page.wait_for_function(
        f"() => {SHADOW}.querySelector('textarea').value === 'What are your opening hours?'"
    )
    # The visitor edits the text before sending it.
    page.fill("textarea", "What are your opening hours on Sunday?")
    page.keyboard.press("Enter")
    page.wait_for_selector(".assistant >> text=Turn 1: you said 'What are your opening hours on Sunday?'")
    page.screenshot(path=str(ARTIFACTS / f"widget-voice-turn-{recorder}.png"))


def test_an_image_is_attached_shown_and_sent_with_the_message(media_page, tmp_path):
    page = media_page
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes(64, 48))
    page.wait_for_selector("button[aria-label='Attach an image']")
    with page.expect_response("**/v1/files*") as uploaded:
        page.set_input_files("input.files", str(photo))
    assert uploaded.value.status == 201
    page.wait_for_selector(".attached img[alt='Image 1 to send']")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-image-attached.png"))
    page.fill("textarea", "What is in this picture?")
    with page.expect_request("**/v1/chat/stream") as turn:
        page.keyboard.press("Enter")
    assert turn.value.post_data_json["files"] == [uploaded.value.json()["fileId"]]
    page.wait_for_selector(".assistant >> text=Turn 1: you said 'What is in this picture?' [images: 1]")
    assert page.locator(".visitor img[alt='Image 1 you sent']").count() == 1
    assert page.locator(".attached img").count() == 0  # the next message starts without it
    page.screenshot(path=str(ARTIFACTS / "widget-image-turn.png"))


def test_an_image_of_a_type_the_app_does_not_take_is_refused_in_the_page(media_page, tmp_path):
    page = media_page
    drawing = tmp_path / "drawing.svg"
    drawing.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    relay_uploads = []
    page.on("request", lambda request: "/v1/files" in request.url and relay_uploads.append(request.url))
    page.set_input_files("input.files", str(drawing))
    page.wait_for_selector(".notice >> text=Only images of these types can be attached")
    assert relay_uploads == [] and page.locator(".attached img").count() == 0


def test_an_answer_is_read_aloud(media_page):
    page = media_page
    page.fill("textarea", "Read this to me")
    page.keyboard.press("Enter")
    page.wait_for_selector("button[aria-label='Read aloud']")
    with page.expect_response("**/v1/speech") as spoken:
        page.click("button[aria-label='Read aloud']")
    assert spoken.value.status == 200 and spoken.value.headers["content-type"] == "audio/mpeg"
    page.wait_for_selector("button[aria-label='Read aloud'][aria-pressed=true]")
    page.wait_for_selector("button[aria-label='Read aloud'][aria-pressed=false]")  # played to its end
    assert page.locator(".notice").count() == 0


def focused(page) -> str:
    return page.evaluate(
        f"""() => {{ const e = {SHADOW}.activeElement; if (!e) return '';
            const name = e.getAttribute('aria-label') || (e.type === 'checkbox' ? 'consent' : '');
            return name || e.textContent.trim(); }}"""
    )


def test_keyboard_alone_reaches_every_control_and_focus_is_visible(browser, servers):
    context = browser.new_context(permissions=["microphone"])
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(servers["allowed"])
        page.keyboard.press("Tab")
        assert page.evaluate(f"() => {SHADOW}.activeElement.classList.contains('bubble')")
        page.keyboard.press("Enter")
        page.wait_for_selector(".panel:not([hidden])")
        assert focused(page) == "Your message"
        page.keyboard.press("Shift+Tab")
        assert focused(page) == "consent"
        page.keyboard.press("Space")
        page.wait_for_selector(".assistant >> text=Hello! How can I help?")
        page.wait_for_selector("button[aria-label='Attach an image']")
        page.keyboard.press("Tab")
        page.keyboard.type("Hello by keyboard")
        page.keyboard.press("Enter")
        page.wait_for_selector(".assistant >> text=Turn 1: you said 'Hello by keyboard'")
        page.wait_for_selector("button[aria-label='Read aloud']")
        reached, outlines = set(), set()
        for _ in range(30):  # round the widget and back: the panel is not modal, Tab may leave it
            page.keyboard.press("Tab")
            name = focused(page)
            if name:
                reached.add(name)
                outlines.add(page.evaluate(f"() => getComputedStyle({SHADOW}.activeElement).outlineStyle"))
        expected = {
            "Forget me",
            "Close chat",
            "Helpful",
            "Not helpful",
            "Read aloud",
            "consent",
            "Your message",
            "Record a voice message",
            "Attach an image",
            "Send",
        }
        assert expected <= reached, expected - reached
        assert outlines == {"solid"}  # every control shows where the focus is
        page.keyboard.press("Escape")
        page.wait_for_selector(".panel", state="hidden")
        assert page.evaluate(f"() => {SHADOW}.activeElement.classList.contains('bubble')")
    finally:
        context.close()


def test_axe_finds_no_serious_accessibility_violations(media_page, tmp_path):
    page = media_page
    assert serious_accessibility_violations(page) == []
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes(8, 8))
    page.set_input_files("input.files", str(photo))
    page.wait_for_selector(".attached img[alt='Image 1 to send']")
    page.fill("textarea", "An accessible answer, please")
    page.keyboard.press("Enter")
    page.wait_for_selector("button[aria-label='Read aloud']")
    page.wait_for_selector(".chips button")
    assert serious_accessibility_violations(page) == []
    page.screenshot(path=str(ARTIFACTS / "widget-accessible.png"))


def test_forget_me_while_recording_sends_the_recording_nowhere(media_page):
    page = media_page
    audio_requests = []
    page.on("request", lambda request: "/v1/audio" in request.url and audio_requests.append(request.url))
    page.click(".mic")
    page.wait_for_selector(".mic[aria-pressed=true]")
    page.click(".erase")
    page.wait_for_selector(".mic[aria-pressed=false]", state="attached")
    page.wait_for_timeout(1_000)
    assert audio_requests == []
    stored = "() => Object.keys(localStorage).filter(k => k.endsWith(':session'))"
    assert page.evaluate(stored) == []


def test_two_widgets_on_one_page_talk_to_their_own_apps(page, servers):
    page.goto(servers["allowed"])
    default = page.locator(".dify-relay-widget:not([data-app])")
    sales = page.locator(".dify-relay-widget[data-app=sales]")
    requests = []
    page.on("request", lambda r: r.url.startswith(servers["relay"]) and requests.append(r.url))

    sales.locator(".bubble").click()
    assert sales.locator("header h2").inner_text() == "Sales assistant"
    sales.locator(".consent input").check()
    sales.locator(".assistant >> text=Hello from sales! Which plan interests you?").wait_for()
    sales.locator("textarea").fill("Which plans are there?")
    sales.locator("textarea").press("Enter")
    sales.locator(".assistant >> text=Turn 1: you said 'Which plans are there?'").wait_for()
    sales.locator(".chips button").first.wait_for()
    assert all("/v1/apps/sales/" in url for url in requests), requests
    assert default.locator(".visitor").count() == 0  # the other widget heard nothing of it

    sent = len(requests)
    default.locator(".bubble").click()
    default.locator(".consent input").check()  # consent is given to each app on its own
    default.locator(".assistant >> text=Hello! How can I help?").wait_for()
    default.locator("textarea").fill("Where is my order?")
    default.locator("textarea").press("Enter")
    # Turn 1 again: a conversation of its own with the default app, not the sales one's second turn.
    default.locator(".assistant >> text=Turn 1: you said 'Where is my order?'").wait_for()
    assert requests[sent:] and not any("/v1/apps/" in url for url in requests[sent:]), requests[sent:]
    assert sales.locator(".bubble").evaluate("b => getComputedStyle(b).left") == "20px"
    assert default.locator(".bubble").evaluate("b => getComputedStyle(b).right") == "20px"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-two-apps.png"))

    # The sales widget's session is no key to the default app's conversations, nor the other way round.
    sessions = page.evaluate(
        "() => Object.fromEntries(Object.keys(localStorage).filter(k => k.endsWith(':session'))"
        ".map(k => [k.includes('#sales') ? 'sales' : 'default', localStorage.getItem(k)]))"
    )
    assert set(sessions) == {"sales", "default"} and sessions["sales"] != sessions["default"]
    crossed = page.evaluate(
        """async ([relay, sessions]) => {
            const turns = async (path, id) =>
                (await (await fetch(`${relay}${path}?sessionId=${id}`)).json()).turns;
            return [
                await turns('/v1/history', sessions.sales),
                await turns('/v1/apps/sales/history', sessions.default),
                (await turns('/v1/apps/sales/history', sessions.sales)).length,
            ];
        }""",
        [servers["relay"], sessions],
    )
    assert crossed == [[], [], 1]

    page.reload()
    sales.locator(".bubble").click()
    sales.locator(".assistant >> text=Turn 1: you said 'Which plans are there?'").wait_for()
    default.locator(".bubble").click()
    default.locator(".assistant >> text=Turn 1: you said 'Where is my order?'").wait_for()
    assert sales.locator(".visitor").all_inner_texts() == ["Which plans are there?"]
    assert default.locator(".visitor").all_inner_texts() == ["Where is my order?"]


@pytest.mark.parametrize("app_id", ["Sales", "default", "../chat"])
def test_a_widget_naming_no_valid_app_says_so_and_sends_nothing(page, servers, app_id):
    page.goto(servers["allowed"])
    page.wait_for_selector(".dify-relay-widget", state="attached")
    errors, requests = [], []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("request", lambda r: r.url.startswith(servers["relay"]) and requests.append(r.url))
    before = page.locator(".dify-relay-widget").count()
    page.evaluate(
        """([relay, app]) => {
            const script = document.createElement('script');
            script.src = '/relay-widget.js?invalid';
            script.dataset.relayUrl = relay;
            script.dataset.app = app;
            document.body.appendChild(script);
        }""",
        [servers["relay"], app_id],
    )
    page.wait_for_function(
        "() => performance.getEntriesByName(location.origin + '/relay-widget.js?invalid').length"
    )
    page.wait_for_timeout(300)
    assert any("data-app must be" in text and app_id in text for text in errors), errors
    assert page.locator(".dify-relay-widget").count() == before and requests == []
