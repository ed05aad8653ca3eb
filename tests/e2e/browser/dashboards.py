"""Drives lakehose's dashboards in headless Chromium (Debian's chromium and
chromedriver, through Selenium): signs in, checks each chart's marks against
the known data the test loaded, changes a filter and a parameter, follows
drill-downs, fetches a CSV, and saves a screenshot of each page.

Environment: BASE (the server), KEY_ID and SECRET (a viewer's key), SHOTS
(the folder for screenshots). Exits non-zero on the first failed check."""

import json
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["BASE"]
SHOTS = os.environ["SHOTS"]
os.makedirs(SHOTS, exist_ok=True)

options = Options()
options.binary_location = "/usr/bin/chromium"
for arg in [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--window-size=1400,2200",
]:
    options.add_argument(arg)
DOWNLOADS = os.path.join(SHOTS, "downloads")
os.makedirs(DOWNLOADS, exist_ok=True)
options.add_experimental_option("prefs", {
    "download.default_directory": DOWNLOADS,
    "download.prompt_for_download": False,
})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
driver.set_page_load_timeout(60)
wait = WebDriverWait(driver, 30)


def check(condition, what):
    if not condition:
        shot("failure")
        print("FAILED:", what, file=sys.stderr)
        print("page:", driver.current_url, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def shot(name):
    driver.save_screenshot(os.path.join(SHOTS, name + ".png"))


def marks(visual):
    return driver.find_elements(By.CSS_SELECTOR, "#v-%s .lh-mark" % visual)


def ys(visual):
    return sorted(float(m.get_attribute("data-y")) for m in marks(visual))


def apply_filters():
    before = driver.find_element(By.TAG_NAME, "body").get_attribute("data-lh-updated")
    driver.find_element(By.CSS_SELECTOR, "#lh-filters button[type=submit]").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-lh-updated") not in (None, before))


try:
    # Signing in: the page sends a viewer to the form and back.
    driver.get(BASE + "/dashboards/service_health")
    wait.until(lambda d: "/dashboards/login" in d.current_url)
    shot("login")
    driver.find_element(By.NAME, "access_key_id").send_keys(os.environ["KEY_ID"])
    driver.find_element(By.NAME, "secret").send_keys(os.environ["SECRET"])
    driver.find_element(By.CSS_SELECTOR, ".lh-login button").click()
    wait.until(lambda d: d.current_url.rstrip("/").endswith("/dashboards/service_health"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#v-requests svg"))

    # Service health: the charts' marks are the known rows.
    check(ys("requests_total") == [330.0], "KPI of all requests is 330: %s" % ys("requests_total"))
    check(len(marks("requests")) == 4, "4 points: 2 services x 2 hours (%d)" % len(marks("requests")))
    check(ys("status_classes") == [70.0, 260.0], "donut 2xx 260, 5xx 70: %s" % ys("status_classes"))
    check(ys("failing_endpoints") == [6.0, 10.0], "failing endpoints 10 and 6: %s" % ys("failing_endpoints"))
    rate = ys("error_rate_total")[0]
    check(abs(rate - 16 / 330) < 1e-9, "error rate 16/330: %s" % rate)
    check(len(marks("errors_heat")) == 4, "heat map of 2 x 2 cells")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#v-endpoints tbody tr")) == 2, "2 endpoints in the table")
    check("330" in driver.find_element(By.ID, "v-requests_total").text or marks("requests_total"), "KPI drawn")
    shot("service_health")

    # A filter: the service dropdown narrows every visual, without a reload.
    Select(driver.find_element(By.NAME, "service")).select_by_visible_text("api")
    apply_filters()
    check(ys("requests_total") == [220.0], "api alone: 220 requests: %s" % ys("requests_total"))
    check(len(marks("requests")) == 2, "api alone: 2 points")
    check("service=api" in driver.current_url, "the address keeps the filter: " + driver.current_url)
    shot("service_health_api")

    # Hostile text in a filter is a value, never SQL: nothing matches.
    Select(driver.find_element(By.NAME, "service")).select_by_visible_text("All")
    box = driver.find_element(By.NAME, "endpoint")
    box.clear()
    box.send_keys("' OR 1=1 --")
    apply_filters()
    check(marks("requests_total") == [], "an injected filter matches nothing")
    check(len(marks("requests")) == 0, "no points for an injected filter")
    box = driver.find_element(By.NAME, "endpoint")
    box.clear()
    box.send_keys("orders")
    apply_filters()
    check(ys("requests_total") == [220.0], "endpoint contains 'orders': 220")

    # CSV of a visual, as the page links it.
    href = driver.find_element(By.CSS_SELECTOR, "#v-endpoints .lh-actions a").get_attribute("href")
    csv = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.text()).then(done);", href)
    check(csv.splitlines()[0] == "service,endpoint,requests,errors,error_pct,p95_ms", "CSV header: " + csv.splitlines()[0])
    check(len(csv.strip().splitlines()) == 2 and "api" in csv, "CSV has the filtered row: " + csv)

    # A chart downloads as PNG, drawn in the browser from its SVG.
    for f in os.listdir(DOWNLOADS):
        os.remove(os.path.join(DOWNLOADS, f))
    driver.find_element(By.CSS_SELECTOR, "#v-requests [data-lh-png]").click()
    png = os.path.join(DOWNLOADS, "requests.png")
    for _ in range(100):
        if os.path.exists(png) and os.path.getsize(png) > 0:
            break
        time.sleep(0.1)
    check(os.path.exists(png), "the PNG download arrived")
    with open(png, "rb") as f:
        check(f.read(8) == b"\x89PNG\r\n\x1a\n", "it is a PNG")

    # Drill-down to the rows behind a point.
    driver.get(BASE + "/dashboards/service_health")
    point = driver.find_element(By.CSS_SELECTOR, "#v-requests a .lh-mark[data-series=api]")
    link = point.find_element(By.XPATH, "./ancestor::*[local-name()='a'][1]")
    driver.get(BASE + link.get_dom_attribute("href"))
    rows = driver.find_elements(By.CSS_SELECTOR, "table.lh-rows tbody tr")
    check(len(rows) in (1, 2), "the rows behind one api point (%d)" % len(rows))
    check(all("api" in r.text for r in rows), "only api rows")
    shot("drill_rows")

    # Drill-down to another dashboard, with the bar's value as its parameter.
    driver.get(BASE + "/dashboards/service_health")
    bar = driver.find_element(By.CSS_SELECTOR, "#v-failing_endpoints .lh-mark[data-x='/api/orders/{id}']")
    link = bar.find_element(By.XPATH, "./ancestor::*[local-name()='a'][1]")
    driver.get(BASE + link.get_dom_attribute("href"))
    wait.until(lambda d: "/dashboards/endpoint_logs" in d.current_url)
    check(ys("count") == [2.0], "2 failed requests of /api/orders/{id}: %s" % ys("count"))
    check(len(driver.find_elements(By.CSS_SELECTOR, "#v-rows tbody tr")) == 2, "their 2 rows")
    shot("endpoint_logs")

    # A parameter: a lower status floor brings the successful one in.
    box = driver.find_element(By.NAME, "min_status")
    box.clear()
    box.send_keys("200")
    apply_filters()
    check(ys("count") == [3.0], "status >= 200: 3 requests: %s" % ys("count"))
    box = driver.find_element(By.NAME, "min_status")
    box.clear()
    box.send_keys("not a number")
    driver.find_element(By.CSS_SELECTOR, "#lh-filters button[type=submit]").click()
    wait.until(lambda d: "is not an integer" in d.page_source)
    check("min_status" in driver.page_source, "a bad parameter is named")

    # Users: daily active users and requests per plan.
    driver.get(BASE + "/dashboards/users")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#v-dau_line svg"))
    check(ys("dau_line") == [3.0, 5.0], "daily active users 3 and 5: %s" % ys("dau_line"))
    check(sum(ys("per_plan")) == 4.0, "4 requests of known users across plans: %s" % ys("per_plan"))
    shot("users")

    # The index lists every dashboard with its freshness; the dark theme.
    driver.get(BASE + "/dashboards")
    links = [a.text for a in driver.find_elements(By.CSS_SELECTOR, ".lh-index a")]
    check(set(["Service health", "Users", "Endpoint logs"]) <= set(links), "index lists the dashboards: %s" % links)
    shot("index")
    driver.get(BASE + "/dashboards/service_health")
    driver.find_element(By.CSS_SELECTOR, "[data-lh-theme]").click()
    check(driver.find_element(By.TAG_NAME, "html").get_attribute("data-theme") == "dark", "dark theme")
    shot("service_health_dark")
    print(json.dumps({"ok": True}))
finally:
    driver.quit()
