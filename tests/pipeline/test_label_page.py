import csv
import json
import logging
import shutil
import threading
import urllib.error
import urllib.request

import pytest

flask = pytest.importorskip("flask")

from almea_pyg import cli  # noqa: E402
from almea_pyg.data.pair import link_keys  # noqa: E402
from almea_pyg.pipeline import experiment, label_page  # noqa: E402
from almea_pyg.pipeline.label_page import LabelServer, create_app  # noqa: E402
from almea_pyg.typing import ENTITY, RELATION_EDGE  # noqa: E402

TOKEN = "test-token"
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run whose first round waits for a person (trained once per module)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    argv = ["train", "--epochs", "1", "--dim", "8", "--no-progress", "--rounds", "1"]
    argv += ["--budget", "32", "--strategy", "random", "--oracle", "human"]
    assert cli.main([*argv, "--output", str(run)]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def post(client, path, **data):
    return client.post(path, json={"token": TOKEN, **data})


def file_labels(run):
    with open(run / "labels_round1.csv", newline="", encoding="utf-8") as f:
        return [row["label"] for row in csv.DictReader(f)]


def truth(app):
    """The right answer of every asked pair (true links are one-to-one)."""
    session = app.config["LABEL_SESSION"]
    pair = session.pair
    num_targets = pair.num_entities[1]
    true = link_keys(session.pairs, num_targets)
    known = link_keys(pair.links, num_targets)
    return ["yes" if k in set(known.tolist()) else "no" for k in true.tolist()]


def test_label_all_finish_and_resume(run):
    app = create_app(run, token=TOKEN)
    client = app.test_client()
    page = client.get(f"/?token={TOKEN}")
    assert page.status_code == 200 and b"Pair 1 of" in page.data
    assert b"http://" not in page.data and b"https://" not in page.data
    answers = truth(app)
    assert 0 < len(answers) <= 32
    for index, label in enumerate(answers):
        reply = post(client, "/answer", index=index, label=label)
        assert reply.status_code == 200, reply.json
        assert reply.json["answered"] == index + 1
    assert file_labels(run) == answers
    finished = post(client, "/finish")
    assert finished.status_code == 200
    assert finished.json["yes"] == answers.count("yes")
    assert finished.json["resume"] == f"almea-pyg train --resume --output {run}"
    assert post(client, "/answer", index=0, label="no").status_code == 409
    assert cli.main(["train", "--resume", "--output", str(run), "--no-progress"]) == 0
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "done"
    last = result["rounds"][-1]
    assert last["asked"] == len(answers)
    assert last["correct"] == answers.count("yes")
    assert last["labelled"] == result["rounds"][0]["labelled"] + answers.count("yes")


def test_restart_keeps_answers_and_resumes(run):
    client = create_app(run, token=TOKEN).test_client()
    for index in (0, 1, 3):
        assert post(client, "/answer", index=index, label="no").status_code == 200
    assert post(client, "/answer", index=2, label="skip").status_code == 200
    assert client.get(f"/state?token={TOKEN}").json["current"] == 4
    # the server is killed: a new one on the same folder
    client = create_app(run, token=TOKEN).test_client()
    state = client.get(f"/state?token={TOKEN}").json
    assert state["labels"][:4] == ["no", "no", "", "no"]
    assert state["answered"] == 3 and state["current"] == 2
    assert b"Pair 3 of" in client.get(f"/?token={TOKEN}").data


def test_kg_text_is_escaped(run, monkeypatch):
    restore = experiment.restore_learner

    def restore_with_script(path):
        learner = restore(path)
        pair = learner.trainer.pair
        s, t = learner.pending.pairs[:, 0].tolist()
        names = [""] * pair.source[ENTITY].num_nodes
        names[s] = XSS
        pair.source[ENTITY].names = names
        relations = pair.target[RELATION_EDGE].relation_names
        pair.target[RELATION_EDGE].relation_names = [XSS] * len(relations)
        return learner

    monkeypatch.setattr(experiment, "restore_learner", restore_with_script)
    client = create_app(run, token=TOKEN).test_client()
    html = client.get(f"/?token={TOKEN}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "default-src 'none'" in client.get("/").headers["Content-Security-Policy"]


def test_token_required(run):
    app = create_app(run, token=TOKEN)
    client = app.test_client()
    for path in ("/", "/state", "/?token=wrong", "/state?token="):
        assert client.get(path).status_code == 403
    for path in ("/answer", "/undo", "/finish"):
        assert client.post(path, json={"index": 0, "label": "no"}).status_code == 403
        assert client.post(path, data={"token": "wrong"}).status_code == 403
    assert file_labels(run) == [""] * len(file_labels(run))
    # a valid visit sets a cookie that serves later pages, but no change
    assert client.get(f"/?token={TOKEN}").status_code == 200
    assert client.get("/state").status_code == 200
    assert client.post("/answer", data={"index": 0, "label": "no"}).status_code == 403
    assert create_app(run).config["LABEL_TOKEN"] not in ("", TOKEN)


def test_undo_clears_last_answer(run):
    client = create_app(run, token=TOKEN).test_client()
    post(client, "/answer", index=0, label="no")
    post(client, "/answer", index=1, label="no")
    reply = post(client, "/undo")
    assert reply.json["undone"] == 1
    assert file_labels(run)[:2] == ["no", ""]
    assert reply.json["current"] == 1


def test_form_answers_and_conflicts(run):
    app = create_app(run, token=TOKEN)
    client = app.test_client()
    form = client.post("/answer", data={"token": TOKEN, "index": 0, "label": "no"})
    assert form.status_code == 303 and TOKEN in form.headers["Location"]
    assert post(client, "/answer", index=0, label="maybe").status_code == 400
    assert post(client, "/answer", index=10**6, label="no").status_code == 400
    session = app.config["LABEL_SESSION"]
    s = session.pairs[0, 0]
    same = (session.pairs[0] == s).nonzero().view(-1).tolist()
    if len(same) > 1:  # a source asked twice: only one "yes"
        post(client, "/answer", index=same[0], label="yes")
        assert post(client, "/answer", index=same[1], label="yes").status_code == 409
    assert repr(session).startswith("LabelSession(round 1, ")


def test_finish_without_answers_is_refused(run):
    client = create_app(run, token=TOKEN).test_client()
    reply = client.post("/finish", data={"token": TOKEN})
    assert reply.status_code == 400 and b"no pair is answered" in reply.data


def test_server_over_http(run):
    server = LabelServer(run, port=0, token=TOKEN)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.url.startswith("http://127.0.0.1:") and TOKEN in server.url
        with urllib.request.urlopen(server.url) as response:
            assert b"Finish round" in response.read()
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(server.url.split("?")[0])
        assert error.value.code == 403
    finally:
        server.shutdown()


def test_serve_logs_the_address(run, monkeypatch, caplog):
    opened = []

    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(LabelServer, "serve_forever", interrupt)
    monkeypatch.setattr(label_page.webbrowser, "open", opened.append)
    with caplog.at_level(logging.INFO, logger=label_page.__name__):
        label_page.serve(run, port=0, token=TOKEN, open_browser=True)
    assert len(opened) == 1 and opened[0].endswith(f"/?token={TOKEN}")
    assert opened[0] in caplog.text


def browser():
    """A headless Chromium driven by selenium, or a skip."""
    webdriver = pytest.importorskip("selenium.webdriver")
    if not shutil.which("chromedriver"):
        pytest.skip("no chromedriver (Debian: chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    try:
        return webdriver.Chrome(options=options, service=service)
    except Exception as error:  # no browser binary, or it does not start
        pytest.skip(f"headless Chromium does not start: {error}")


@pytest.mark.browser
def test_keyboard_in_browser(run, request):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    request.addfinalizer(driver.quit)
    server = LabelServer(run, port=0, token=TOKEN)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    request.addfinalizer(server.shutdown)
    answers = truth(server.app)
    driver.set_window_size(1200, 1400)
    driver.get(server.url)
    for index, label in enumerate(answers):
        WebDriverWait(driver, 10).until(
            lambda d, i=index: (
                f"{i} / {len(answers)}" in d.find_element(By.ID, "progress").text
            )
        )
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys(label[0])
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "all-seen"))
    driver.find_element(By.ID, "finish").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "finished"))
    assert file_labels(run) == answers
    assert server.app.config["LABEL_SESSION"].learner.pending.answered
