"""End to end in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium)."""

import os
import shutil
import socket
import threading
import time

import cv2
import pytest
from matplotlib import cbook

pytestmark = pytest.mark.browser
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
GRACE = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
# Read the canvas of a page: |video mirrored - canvas| and |video - canvas|, summed over a grid.
MIRROR_CHECK = """
const v = document.getElementById("video"), o = document.getElementById(arguments[0]);
const c = document.createElement("canvas"); c.width = v.videoWidth; c.height = v.videoHeight;
const g = c.getContext("2d"); g.drawImage(v, 0, 0);
const a = g.getImageData(0, 0, c.width, c.height).data;
const b = o.getContext("2d").getImageData(0, 0, o.width, o.height).data;
let flipped = 0, straight = 0;
for (let y = 0; y < c.height; y += 8) for (let x = 0; x < c.width; x += 8) {
  const i = (y * c.width + x) * 4, j = (y * c.width + (c.width - 1 - x)) * 4;
  flipped += Math.abs(a[j] - b[i]); straight += Math.abs(a[i] - b[i]);
}
return [flipped, straight];
"""


def shot(drv, tmp_path, name):
    """Screenshots go to $FERKIT_SCREENSHOTS (docs/img when refreshing the README's), else tmp."""
    folder = os.environ.get("FERKIT_SCREENSHOTS") or tmp_path
    drv.save_screenshot(os.path.join(folder, name))


@pytest.fixture(scope="module")
def server():
    import uvicorn

    from ferkit.app.server import AppConfig, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(
        uvicorn.Config(create_app(AppConfig()), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started and thread.is_alive():  # readiness, not a clock
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "install Debian's chromium and chromium-driver (.ci/run does)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        *CHROME_FLAGS,
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
        "--window-size=1100,900",
    ):
        options.add_argument(flag)
    drv = webdriver.Chrome(service=Service(driver), options=options)
    yield drv
    drv.quit()


def test_analyze_page_uploads_and_shows_the_label(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    browser.find_element(By.ID, "file").send_keys(GRACE)
    label = WebDriverWait(browser, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, '[data-testid="label-0"]'))
    )
    labels = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert label.text in labels
    assert "1 face(s) found" in browser.find_element(By.ID, "summary").text
    shot(browser, tmp_path, "analyze.png")


def test_api_docs_render_offline(server, browser):
    """Swagger UI and ReDoc come from the Python package: they render with no network."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/docs")
    op = WebDriverWait(browser, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#operations-default-analyze_api_v1_analyze_post"))
    )
    assert "/api/v1/analyze" in op.text
    browser.get(server + "/redoc")
    WebDriverWait(browser, 30).until(lambda d: "/api/v1/analyze" in d.find_element(By.TAG_NAME, "body").text)
    # every script, stylesheet and fetch came from this server (ReDoc's footer logo, an <img>,
    # still points at its CDN: cosmetic, and simply missing offline)
    entries = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => [e.name, e.initiatorType])"
    )
    needed = [url for url, kind in entries if kind != "img"]
    assert needed and all(u.startswith(server) for u in needed), entries


def fake_camera_chrome(y4m, profile, size="1100,900"):
    """Headless Chromium whose camera plays ``y4m`` (permission granted without a prompt)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        *CHROME_FLAGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
        f"--user-data-dir={profile}",
        f"--window-size={size}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def test_live_page_with_a_fake_camera(server, tmp_path):
    """Chromium's fake camera plays a generated clip of a face; the page shows its label."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from skimage import data

    from ferkit.runtime.recognize import Recognizer
    from ferkit.synth import Actor, render_frames, write_y4m

    face = data.astronaut()[30:230, 120:320]
    frames = [
        img for img, _ in render_frames([Actor({"x": face}, [(0.0, "x")], (220, 140), (240, 150), 200)], 2)
    ]
    expected = Recognizer("default").recognize(frames[0])[0].label  # what the model says on the clip
    y4m = write_y4m(tmp_path / "camera.y4m", frames)
    drv = fake_camera_chrome(y4m, tmp_path / "profile")
    try:
        drv.get(server + "/live.html")
        drv.find_element(By.ID, "start").click()
        # The cards are redrawn every frame: read the text afresh each time.
        read = (
            "const e = document.querySelector('[data-testid=\"live-label-0\"]'); return e && e.textContent;"
        )
        label = WebDriverWait(drv, 30).until(lambda d: d.execute_script(read))
        assert label == expected
        WebDriverWait(drv, 10).until(lambda d: "FPS" in d.find_element(By.ID, "fps").text)
        # One picture of the camera, mirrored, with the boxes over it (no raw <video> beside it).
        assert not drv.find_element(By.ID, "video").is_displayed()
        flipped, straight = drv.execute_script(MIRROR_CHECK, "overlay")
        assert flipped * 3 < straight, (flipped, straight)
        shot(drv, tmp_path, "live.png")
    finally:
        drv.quit()


def test_mirror_game_page_reports_scripted_hits_and_misses(server, tmp_path):
    """The fake camera follows a script: a smiling face (read as happy) for 5 s, then a neutral one.

    Targets alternate happy / surprise (pinned by the seed), 1 s countdown, hard level (0.75 for
    1.0 s, 3 s limit): round 1 (happy) is a hit within ~2.5 s of the start, round 2 (surprise)
    a miss, and round 3 (happy again, from ~8 s) a miss because the face has turned neutral.
    The script switches at 5 s, >= 2.5 s away from both round boundaries it must fall between.
    """
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait
    from skimage import data

    from ferkit.runtime.recognize import Recognizer
    from ferkit.synth import Actor, render_frames, write_y4m

    grace = cv2.cvtColor(cv2.imread(str(GRACE)), cv2.COLOR_BGR2RGB)[20:420, 60:460]
    faces = {"happy": data.astronaut()[30:230, 120:320], "neutral": grace}
    actor = Actor(faces, [(0.0, "happy"), (5.0, "neutral")], (220, 140), (230, 150), 200)
    frames = [img for img, _ in render_frames([actor], 14, fps=10)]
    rec = Recognizer("default")  # the script means what it says to this model
    assert rec.recognize(frames[0])[0].probs["happy"] > 0.8
    assert rec.recognize(frames[-1])[0].probs["happy"] < 0.2
    y4m = write_y4m(tmp_path / "camera.y4m", frames, fps=10)
    drv = fake_camera_chrome(y4m, tmp_path / "profile", size="1280,720")
    try:
        drv.get(server + "/mirror.html?seed=1&expressions=happy,surprise&countdown=1")
        # Keyboard only, as on a mirror with no mouse: 3 = hard, 5 x down = 3 rounds, Enter = start.
        keys = ActionChains(drv).send_keys("3")
        for _ in range(5):
            keys = keys.send_keys(Keys.ARROW_DOWN)
        keys.perform()
        assert Select(drv.find_element(By.ID, "difficulty")).first_selected_option.text == "hard"
        assert drv.find_element(By.ID, "rounds").get_attribute("value") == "3"
        ActionChains(drv).send_keys(Keys.ENTER).perform()  # the camera (and so the script) starts here
        target = drv.find_element(By.ID, "target-word")
        WebDriverWait(drv, 10).until(lambda d: target.text.lower() == "happy")
        assert not drv.find_element(By.ID, "menu").is_displayed()  # full-screen play, no form
        WebDriverWait(drv, 10).until(lambda d: "HIT" in d.find_element(By.ID, "verdict").text)
        flipped, straight = drv.execute_script(MIRROR_CHECK, "view")
        assert flipped * 3 < straight, (flipped, straight)  # a mirror, not a camera
        assert float(drv.find_element(By.ID, "rt").text.split()[0]) < 3  # response time, big
        shot(drv, tmp_path, "mirror-play.png")
        WebDriverWait(drv, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="summary"]'))
        items = drv.find_elements(By.CSS_SELECTOR, "#results li")
        outcomes = [(li.text.split(":")[0], li.get_attribute("data-outcome")) for li in items]
        assert outcomes == [("happy", "hit"), ("surprise", "miss"), ("happy", "miss")]
        assert "1 hits, 2 misses" in drv.find_element(By.CSS_SELECTOR, '[data-testid="summary"]').text
        # Between games: the leaderboard (this game in it) and Start, focused for the next Enter.
        WebDriverWait(drv, 10).until(lambda d: "player" in d.find_element(By.ID, "board").text)
        assert drv.switch_to.active_element.get_attribute("id") == "start"
        shot(drv, tmp_path, "mirror-over.png")
    finally:
        drv.quit()
