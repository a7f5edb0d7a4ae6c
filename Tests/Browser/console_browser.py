#!/usr/bin/env python3
"""The web console in a real browser: Debian's chromium, headless, driven by
Selenium through Debian's chromedriver. Run by ConsoleBrowserTests (which
starts the cluster and stops zone 2 between scenarios), or by hand:

    console_browser.py SCENARIO...      scenarios: signin tail drains hostile
                                         notices cluster-up zone-down frames

Environment:
    SLUICE_BIN            the sluice binary (emit, drains, ui)
    SLUICE_CONSOLE_URL    the page, e.g. http://127.0.0.1:8080/sluice/
    SLUICE_INGRESS        a controller's ingress HOST:PORT (sluice emit)
    SLUICE_TOKEN          an admin token
    SLUICE_APP_TOKEN      a token that reads the app `web` only
    SLUICE_EXPIRED_TOKEN  an admin token that expired an hour ago
    SLUICE_SCREENSHOTS    a folder to save screenshots in (optional)
    SLUICE_FRAMES_OUT     where `frames` writes its figures (optional)

Each check that fails raises; the script exits 1 naming it, with the
browser's console log.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BIN = os.environ["SLUICE_BIN"]
PAGE = os.environ["SLUICE_CONSOLE_URL"]
INGRESS = os.environ["SLUICE_INGRESS"]
TOKEN = os.environ["SLUICE_TOKEN"]
APP_TOKEN = os.environ.get("SLUICE_APP_TOKEN", "")
EXPIRED_TOKEN = os.environ.get("SLUICE_EXPIRED_TOKEN", "")
SHOTS = os.environ.get("SLUICE_SCREENSHOTS")
WAIT = 20
# Apps of this run: a run against a cluster that has seen another starts clean.
RUN = "%x" % (int(time.time() * 1000) % 0xFFFFFF)
TAIL_APP, HOSTILE_APP, NOISY_APP, DRAIN_APP, FRAMES_APP = (name + "-" + RUN for name in (
    "tail-app", "hostile-app", "noisy", "drain-app", "frames-app"))


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,900", "--no-first-run", "--disable-extensions",
                     "--user-data-dir=" + tempfile.mkdtemp(prefix="sluice-chromium-")):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(WAIT)
    return driver


def wait(driver, condition, what, timeout=WAIT):
    """Waits until `condition` holds; an element it read that the page
    drew again meanwhile (the lists are redrawn every few seconds) is read
    again at the next try."""
    def attempt(d):
        try:
            return condition(d)
        except StaleElementReferenceException:
            return False
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(attempt)
    except TimeoutException:
        raise Failed("timed out waiting for " + what) from None


def click(driver, selector, what):
    """Clicks the element `selector` names as the page has it now."""
    def attempt(d):
        try:
            d.find_element(By.CSS_SELECTOR, selector).click()
            return True
        except StaleElementReferenceException:
            return False
    wait(driver, attempt, what)


def sluice(*arguments, stdin=None, token=TOKEN, check_status=True):
    environment = dict(os.environ, SLUICE_TOKEN=token)
    result = subprocess.run([BIN, *arguments], input=stdin, capture_output=True, text=True, env=environment, timeout=60)
    if check_status and result.returncode != 0:
        raise Failed("sluice %s failed (%d): %s" % (" ".join(arguments), result.returncode, result.stderr))
    return result


def emit(app, lines, err=False, source_type=None, instance=None):
    arguments = ["emit", "--controller", INGRESS, "--app", app]
    if err:
        arguments.append("--err")
    if source_type:
        arguments += ["--source-type", source_type]
    if instance:
        arguments += ["--instance", instance]
    sluice(*arguments, stdin="".join(line + "\n" for line in lines))


def controller():
    return re.match(r"(https?://[^/]+)", PAGE).group(1)


def api(method, path, body=None, token=TOKEN):
    request = urllib.request.Request(controller() + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Authorization", "Bearer " + token)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sign_in(driver, token=TOKEN, hash_="#/apps"):
    """Signs a fresh page in with the form (a page loaded anew: the same
    address with only its fragment changed would not be)."""
    driver.get(PAGE + hash_)
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    field = wait(driver, lambda d: d.find_elements(By.ID, "token") and d.find_element(By.ID, "token"), "the sign-in form")
    field.send_keys(token)
    driver.find_element(By.ID, "sign-in-button").click()
    wait(driver, lambda d: not d.find_elements(By.ID, "sign-in"), "signing in")


def shown_lines(driver):
    """Every line the tail shows, in order (the page draws only the rows in
    sight: see rows_in_sight)."""
    return driver.execute_script("const box = document.getElementById('lines'); return box ? box.sluiceShown() : []")


def rows_in_sight(driver):
    """The text of the rows the page has drawn."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#lines .line')].map(n => n.childNodes[1] ? n.childNodes[1].data : '')")


def wait_for_lines(driver, expected, what):
    wait(driver, lambda d: shown_lines(d)[-len(expected):] == expected if expected else True, what)


def open_tail(driver, app):
    driver.get(PAGE + "#/apps/" + app)
    wait(driver, lambda d: d.find_elements(By.ID, "lines"), "the tail of " + app)
    wait(driver, lambda d: "Live" in d.find_element(By.ID, "tail-status").text, "the live stream of " + app)


def shot(driver, name):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        driver.save_screenshot(os.path.join(SHOTS, name))


def script_errors(driver):
    return [entry for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon" not in entry["message"] and "401" not in entry["message"]
            and "404" not in entry["message"] and "422" not in entry["message"] and "400" not in entry["message"]
            and "WebSocket" not in entry["message"]]


# ---------- scenarios ----------

def scenario_signin(driver):
    # The page itself, as served: its Content-Security-Policy forbids inline script.
    with urllib.request.urlopen(PAGE, timeout=10) as response:
        policy = response.headers["Content-Security-Policy"]
        check("script-src 'self'" in policy and "unsafe-inline" not in policy, "the CSP: " + policy)
    # A bad token: the sign-in message says so, and nothing else shows.
    driver.get(PAGE)
    field = wait(driver, lambda d: d.find_elements(By.ID, "token") and d.find_element(By.ID, "token"), "the sign-in form")
    field.send_keys("not-a-token")
    driver.find_element(By.ID, "sign-in-button").click()
    wait(driver, lambda d: "refused" in d.find_element(By.ID, "sign-in-message").text, "the refused-token message")
    check(not driver.execute_script("return sessionStorage.getItem('sluice.token')"), "a refused token was kept")
    # An expired one says so.
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(EXPIRED_TOKEN)
    driver.find_element(By.ID, "sign-in-button").click()
    wait(driver, lambda d: d.find_element(By.ID, "sign-in-message").text == "That token has expired.", "the expired-token message")
    # A token that expires while the page is open: back to the sign-in form, saying why.
    sign_in(driver)
    wait(driver, lambda d: d.find_elements(By.ID, "apps"), "the apps page")
    driver.execute_script("sessionStorage.setItem('sluice.token', arguments[0])", EXPIRED_TOKEN)
    driver.refresh()
    wait(driver, lambda d: d.find_elements(By.ID, "sign-in-message")
         and d.find_element(By.ID, "sign-in-message").text == "Your token has expired: sign in again.", "signed out on expiry")
    # A good one: the apps list; the token is kept for the tab, not in the address.
    emit("web", ["hello from web"])
    sign_in(driver)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#apps tr[data-app='web']"), "app web in the list")
    check(TOKEN not in driver.current_url, "the token is in the address")
    check(driver.execute_script("return sessionStorage.getItem('sluice.token')") == TOKEN, "the token is not in sessionStorage")
    # A token that reads only `web` lists only `web`.
    emit("other-app", ["not yours"])
    sign_in(driver, APP_TOKEN)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#apps tr[data-app='web']"), "app web for the app token")
    apps = [row.get_attribute("data-app") for row in driver.find_elements(By.CSS_SELECTOR, "#apps tr[data-app]")]
    check(apps == ["web"], "the app token sees %r" % apps)
    # ... and an app it may not read, opened by name, says so.
    driver.find_element(By.ID, "open-app").send_keys("other-app")
    driver.find_element(By.CSS_SELECTOR, "#open-app-form button").click()
    wait(driver, lambda d: d.current_url.endswith("#/apps/other-app"), "opening an app by name")
    wait(driver, lambda d: "No such app, or your token may not read it" in d.find_element(By.ID, "message").text,
         "the 404 message")
    # `sluice ui`'s link signs a fresh tab in once; the address keeps no code.
    driver.execute_script("sessionStorage.clear()")
    link = sluice("ui", "--controller", PAGE.rstrip("/")).stdout.strip()
    check("#login=" in link and TOKEN not in link, "sluice ui printed " + link)
    driver.get(link)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#apps tr[data-app='web']"), "signing in by the link")
    check("login=" not in driver.current_url, "the code stayed in the address: " + driver.current_url)
    driver.execute_script("sessionStorage.clear()")
    driver.get(PAGE + "#/cluster")
    driver.get(link)
    wait(driver, lambda d: d.find_elements(By.ID, "sign-in-message")
         and "used already" in d.find_element(By.ID, "sign-in-message").text, "a used link refused")


def scenario_tail(driver):
    sign_in(driver)
    first = ["tail line %d" % index for index in range(20)]
    emit(TAIL_APP, first[:10], source_type="APP/PROC/WEB", instance="0")
    open_tail(driver, TAIL_APP)
    # Recent lines first, then live ones, in order.
    wait_for_lines(driver, first[:10], "the recent lines")
    emit(TAIL_APP, first[10:], source_type="APP/PROC/WEB", instance="0")
    wait_for_lines(driver, first, "the live lines")
    check(shown_lines(driver) == first, "lines shown: %r" % shown_lines(driver)[:30])
    header = driver.execute_script("return document.querySelector('#lines .line .meta').textContent")
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d[+-]\d{4} \[APP/PROC/WEB/0\] OUT$", header.strip()),
          "cf logs' columns: %r" % header)
    # ERR lines are red.
    emit(TAIL_APP, ["an error happened"], err=True, source_type="APP/PROC/WEB", instance="1")
    wait_for_lines(driver, ["an error happened"], "the ERR line")
    wait(driver, lambda d: rows_in_sight(d)[-1] == "an error happened", "the ERR line drawn")
    drawn = driver.execute_script("""
        const rows = document.querySelectorAll('#lines .line');
        const last = rows[rows.length - 1];
        return [last.className, getComputedStyle(last).color];
    """)
    check("err" in drawn[0].split(), "the ERR line has no err class: %r" % drawn[0])
    check(drawn[1] in ("rgba(255, 107, 107, 1)", "rgb(255, 107, 107)"), "the ERR line's colour is " + drawn[1])
    # Pause: 500 lines arrive and are counted, not shown; resume shows them all, in order.
    before = shown_lines(driver)
    driver.find_element(By.ID, "pause").click()
    paused = ["paused %03d" % index for index in range(500)]
    emit(TAIL_APP, paused, source_type="APP/PROC/WEB", instance="0")
    wait(driver, lambda d: d.find_element(By.ID, "paused-count").text.startswith("500 new lines"), "the paused count")
    check(shown_lines(driver) == before, "lines were shown while paused")
    driver.find_element(By.ID, "pause").click()
    wait_for_lines(driver, paused, "the 500 lines after resuming")
    check(shown_lines(driver) == before + paused, "after resuming: not every line once, in order")
    # What is drawn is the newest of those (the tail follows), and scrolled
    # to the top, the oldest.
    drawn = rows_in_sight(driver)
    check(len(drawn) >= 10 and drawn == (before + paused)[-len(drawn):], "the rows drawn: %r" % drawn[-3:])
    driver.execute_script("document.getElementById('lines').scrollTop = 0")
    wait(driver, lambda d: rows_in_sight(d)[:3] == first[:3], "the oldest rows after scrolling up")
    wait(driver, lambda d: d.find_element(By.ID, "jump").is_displayed(), "the jump-to-newest button")
    emit(TAIL_APP, ["while scrolled up"], source_type="APP/PROC/WEB", instance="0")
    wait(driver, lambda d: shown_lines(d)[-1] == "while scrolled up", "a line arriving while scrolled up")
    check(rows_in_sight(driver)[:3] == first[:3], "the tail moved while the reader was scrolled up")
    driver.find_element(By.ID, "jump").click()
    wait(driver, lambda d: rows_in_sight(d)[-1] == "while scrolled up", "jumping to the newest line")
    # Filters: text, a regular expression, OUT/ERR, source type, instance; on what is shown and what arrives.
    filter_box = driver.find_element(By.ID, "filter")
    filter_box.send_keys("tail line 1")
    wait(driver, lambda d: shown_lines(d) == ["tail line 1"] + ["tail line %d" % i for i in range(10, 20)], "the text filter")
    emit(TAIL_APP, ["tail line 1000", "something else"], source_type="APP/PROC/WEB", instance="0")
    wait(driver, lambda d: shown_lines(d)[-1] == "tail line 1000", "a matching line arriving")
    check("something else" not in shown_lines(driver), "a line not matching was shown")
    filter_box.clear()
    filter_box.send_keys("/^paused 0[0-4]9$/")
    wait(driver, lambda d: shown_lines(d) == ["paused 009", "paused 019", "paused 029", "paused 039", "paused 049"],
         "the regular expression filter")
    filter_box.send_keys(Keys.CONTROL, "a")
    filter_box.send_keys(Keys.BACKSPACE)
    wait(driver, lambda d: "something else" in shown_lines(d), "clearing the filter")
    driver.find_element(By.CSS_SELECTOR, "#kind-filter option[value='ERR']").click()
    wait(driver, lambda d: shown_lines(d) == ["an error happened"], "the ERR filter")
    driver.find_element(By.CSS_SELECTOR, "#kind-filter option[value='']").click()
    driver.find_element(By.CSS_SELECTOR, "#instance-filter option[value='1']").click()
    wait(driver, lambda d: shown_lines(d) == ["an error happened"], "the instance filter")
    driver.find_element(By.CSS_SELECTOR, "#instance-filter option[value='']").click()
    emit(TAIL_APP, ["from a cell"], source_type="CELL", instance="0")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#source-filter option[value='CELL']"), "the CELL source option")
    driver.find_element(By.CSS_SELECTOR, "#source-filter option[value='CELL']").click()
    wait(driver, lambda d: shown_lines(d) == ["from a cell"], "the source type filter")
    driver.find_element(By.CSS_SELECTOR, "#source-filter option[value='']").click()
    wait(driver, lambda d: len(shown_lines(d)) == 20 + 1 + 500 + 1 + 2 + 1, "every line back")
    # Download: what is shown, as cf logs prints it.
    text = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const original = URL.createObjectURL;
        URL.createObjectURL = (blob) => { URL.createObjectURL = original; blob.text().then(done); return original(blob); };
        document.getElementById('download').click();
    """)
    rows = text.rstrip("\n").split("\n")
    check(len(rows) == 525 and rows[0].startswith("   ") and rows[0].endswith("] OUT tail line 0"), "the download: %r" % rows[:2])
    shot(driver, "console-tail.png")


def scenario_hostile(driver):
    sign_in(driver)
    hostile = ['<script>window.__pwned = 1</script>', '<img src=x onerror="window.__pwned = 2">',
               '"><svg onload="window.__pwned = 3">']
    open_tail(driver, HOSTILE_APP)
    emit(HOSTILE_APP, hostile)
    wait_for_lines(driver, hostile, "the hostile lines, as text")
    check(rows_in_sight(driver)[-3:] == hostile, "the hostile lines drawn: %r" % rows_in_sight(driver)[-3:])
    time.sleep(0.5)  # an onerror or onload would have run by now; nothing to wait on for "nothing happened"
    check(driver.execute_script("return window.__pwned === undefined"), "a hostile line ran")
    check(not driver.find_elements(By.CSS_SELECTOR, "#lines img, #lines script, #lines svg"), "a hostile line became markup")


def scenario_notices(driver):
    sign_in(driver)
    status, body = api("PUT", "/apps/" + NOISY_APP + "/log-rate-limit", {"bytes_per_second": 200})
    check(status == 200, "setting the log rate limit: %d %s" % (status, body))
    open_tail(driver, NOISY_APP)
    # The servers take the new limit from the bindings store within a few
    # seconds: lines go on until one is dropped and told.
    found = lambda d: d.find_elements(By.CSS_SELECTOR, "#banners .banner[data-kind='log_rate_limit']")
    deadline = time.monotonic() + 30
    while not found(driver) and time.monotonic() < deadline:
        emit(NOISY_APP, ["noisy line %03d with some padding to spend the bytes" % index for index in range(100)])
        try:
            wait(driver, found, "the drop banner", timeout=2)
        except Failed:
            pass
    banner = wait(driver, lambda d: found(d) and found(d)[0], "the drop banner")
    check("dropped" in banner.text, "the banner says: " + banner.text)
    check(not any("exceeded log rate limit" in line for line in shown_lines(driver)), "a notice was shown as a line")
    # The apps list counts the drops.
    driver.get(PAGE + "#/apps")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#apps tr[data-app='" + NOISY_APP + "'] td.dropped")
         and int(d.find_element(By.CSS_SELECTOR, "#apps tr[data-app='" + NOISY_APP + "'] td.dropped").text.replace(",", "")) > 0,
         "the drops in the apps list")
    api("DELETE", "/apps/" + NOISY_APP + "/log-rate-limit")


def scenario_drains(driver):
    sign_in(driver)
    emit(DRAIN_APP, ["a line"])
    driver.get(PAGE + "#/apps/" + DRAIN_APP + "/drains")
    wait(driver, lambda d: d.find_elements(By.ID, "add-drain"), "the drains page")
    # A bad URL: the API's own message.
    driver.find_element(By.ID, "drain-url").send_keys("ftp://example.com/logs")
    driver.find_element(By.ID, "add-drain-button").click()
    status, body = api("POST", "/apps/" + DRAIN_APP + "/drains", {"url": "ftp://example.com/logs"})
    check(status == 422, "the API took a bad URL: %d" % status)
    wait(driver, lambda d: d.find_element(By.ID, "drain-error").text == json.loads(body)["message"], "the API's message")
    # Added in the page: listed by `sluice drains list`, credentials hidden in both.
    url_box = driver.find_element(By.ID, "drain-url")
    url_box.clear()
    url_box.send_keys("https://user:secret@127.0.0.1:9/drain")
    driver.find_element(By.ID, "drain-name").send_keys("from-the-page")
    driver.find_element(By.ID, "add-drain-button").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#drains tr[data-name='from-the-page']"), "the drain listed")
    check("secret" not in driver.find_element(By.ID, "drains").text, "the page shows a drain's password")
    listed = sluice("drains", "list", DRAIN_APP, "--controller", controller()).stdout
    check("from-the-page" in listed and "secret" not in listed, "sluice drains list: " + listed)
    # Added by the CLI: listed in the page.
    sluice("drains", "add", DRAIN_APP, "syslog://127.0.0.1:9", "--name", "from-the-cli", "--controller", controller())
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#drains tr[data-name='from-the-cli']"), "the CLI's drain")
    # Its state, from the servers that run it: lines sent to a port where
    # nothing listens are held and retried, and the page says so.
    emit(DRAIN_APP, ["for the drains %d" % index for index in range(5)])
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#drains tr[data-name='from-the-cli'] .badge").text == "retrying",
         "the drain to a closed port retrying")
    wait(driver, lambda d: int(d.find_element(By.CSS_SELECTOR, "#drains tr[data-name='from-the-cli'] td:nth-child(6)")
                               .text.replace(",", "") or "0") > 0, "the retrying drain's queued lines")
    shot(driver, "console-drains.png")
    # Removed in the page (two clicks): gone from the CLI's list.
    remove = "#drains tr[data-name='from-the-page'] button[data-remove]"
    click(driver, remove, "Remove")
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, remove).text == "Remove for good?", "the confirmation")
    click(driver, remove, "Remove for good?")
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "#drains tr[data-name='from-the-page']"), "the drain removed")
    listed = sluice("drains", "list", DRAIN_APP, "--controller", controller()).stdout
    check("from-the-page" not in listed and "from-the-cli" in listed, "after removing: " + listed)


def scenario_cluster_up(driver):
    sign_in(driver)
    driver.get(PAGE + "#/cluster")
    for zone in ("z1", "z2"):
        wait(driver, lambda d, zone=zone: d.find_elements(By.CSS_SELECTOR, "#zones tr[data-zone='%s'][data-state='up']" % zone),
             "zone %s up" % zone)
    wait(driver, lambda d: "…" not in d.find_element(By.ID, "lines-in").text, "the ingress rate")
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#controller-state .badge").text == "ready", "this controller ready")
    wait(driver, lambda d: d.find_element(By.ID, "controller-state").text.startswith("Zone z1"), "this controller's zone")
    for zone in ("z1", "z2"):
        wait(driver, lambda d, zone=zone: d.find_element(By.CSS_SELECTOR, "#zones tr[data-zone='%s'] .controllers" % zone).text
             == "1", "zone %s's controller connected" % zone)
    shot(driver, "console-cluster.png")


def scenario_zone_down(driver):
    sign_in(driver)
    driver.get(PAGE + "#/cluster")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#zones tr[data-zone='z2'][data-state='down']"), "zone z2 down")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#zones tr[data-zone='z1'][data-state='up']"), "zone z1 still up")
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#zones tr[data-zone='z2'] .controllers").text == "0",
         "no server of z2 to see its controller")
    emit("web", ["after z2 went"])
    open_tail(driver, "web")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#banners .banner[data-kind='zone']"), "the partial banner")
    check("z2" in driver.find_element(By.CSS_SELECTOR, "#banners .banner[data-kind='zone']").text, "the banner names z2")
    wait_for_lines(driver, ["after z2 went"], "z1's lines still")


def scenario_frames(driver):
    """10,000 lines a second for 10 s into an open tail; the page's own
    frame timings (requestAnimationFrame) say how long the longest frame was."""
    sign_in(driver)
    open_tail(driver, FRAMES_APP)
    driver.execute_script("""
        window.__frames = [];
        window.__frameTimes = [];
        let last = performance.now();
        function tick(now) { window.__frames.push(now - last); window.__frameTimes.push(now); last = now; requestAnimationFrame(tick); }
        requestAnimationFrame(tick);
    """)
    driver.execute_cdp_cmd("Performance.enable", {})
    def durations():
        metrics = {m["name"]: m["value"] for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
        return {name: metrics.get(name, 0) for name in ("ScriptDuration", "LayoutDuration", "RecalcStyleDuration", "TaskDuration")}
    before = durations()
    load = subprocess.run([BIN, "bench", "load", "--app", FRAMES_APP, "--controller", INGRESS, "--rate", "10000",
                           "--count", "100000", "--batch", "100", "--payload", "64"],
                          capture_output=True, text=True, timeout=120)
    check(load.returncode == 0, "the load generator: " + load.stderr)
    wait(driver, lambda d: d.execute_script(
        "return document.getElementById('lines').sluiceShown().length") >= 50000 and
        "trimmed" in d.find_element(By.ID, "trimmed").text, "the window full and trimmed", timeout=60)
    after = durations()
    busy = {name: round(after[name] - before[name], 2) for name in after}
    print("main thread seconds during the load: %s" % json.dumps(busy))
    frames = driver.execute_script("return window.__frames.slice(1)")
    times = driver.execute_script("return window.__frameTimes.slice(1)")
    worst = sorted(range(len(frames)), key=lambda index: -frames[index])[:5]
    print("longest frames (ms at ms since the first): %s" % ", ".join(
        "%.0f at %.0f" % (frames[index], times[index] - times[0]) for index in worst))
    longest = max(frames)
    ordered = sorted(frames)
    figures = {"frames": len(frames), "longest_ms": round(longest, 1),
               "p99_ms": round(ordered[int(len(ordered) * 0.99)], 1), "median_ms": round(ordered[len(ordered) // 2], 1),
               "trimmed": driver.find_element(By.ID, "trimmed").text, "main_thread_seconds": busy}
    print("frames: " + json.dumps(figures))
    if os.environ.get("SLUICE_FRAMES_OUT"):
        with open(os.environ["SLUICE_FRAMES_OUT"], "w") as out:
            json.dump(figures, out)
    check(longest < 200, "a frame took %.0f ms (the page froze)" % longest)


SCENARIOS = {
    "signin": scenario_signin, "tail": scenario_tail, "hostile": scenario_hostile, "notices": scenario_notices,
    "drains": scenario_drains, "cluster-up": scenario_cluster_up, "zone-down": scenario_zone_down,
    "frames": scenario_frames,
}


def main(names):
    failures = 0
    for name in names:
        driver = browser()
        started = time.monotonic()
        try:
            SCENARIOS[name](driver)
            errors = script_errors(driver)
            check(not errors, "the page logged errors: %r" % errors)
            print("passed: %s (%.1f s)" % (name, time.monotonic() - started))
        except Exception as error:  # every failure is reported, with what the page logged
            failures += 1
            print("FAILED: %s: %s" % (name, error))
            try:
                for entry in driver.get_log("browser"):
                    print("  browser: %s %s" % (entry["level"], entry["message"]))
                shot_dir = SHOTS or tempfile.gettempdir()
                driver.save_screenshot(os.path.join(shot_dir, "failed-%s.png" % name))
                print("  screenshot: " + os.path.join(shot_dir, "failed-%s.png" % name))
            except Exception:
                pass
        finally:
            driver.quit()
    return 1 if failures else 0


if __name__ == "__main__":
    unknown = [name for name in sys.argv[1:] if name not in SCENARIOS]
    if unknown or not sys.argv[1:]:
        print("usage: console_browser.py SCENARIO... (%s)" % " ".join(SCENARIOS))
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
