import csv
import http.client
import json
import logging
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
import torch.nn.functional as F

flask = pytest.importorskip("flask")

from almea_pyg import cli  # noqa: E402
from almea_pyg.data import read_pair, write_synthetic_tsv  # noqa: E402
from almea_pyg.data.pair import link_keys  # noqa: E402
from almea_pyg.data.readers.tsv import read_triples_kg  # noqa: E402
from almea_pyg.pipeline import experiment, label_page  # noqa: E402
from almea_pyg.pipeline.label_page import LabelServer, create_app  # noqa: E402
from almea_pyg.select import STRATEGIES  # noqa: E402
from almea_pyg.select.base import Selection, SelectionContext, Strategy  # noqa: E402
from almea_pyg.typing import ENTITY, RELATION_EDGE  # noqa: E402

TOKEN = "test-token"
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run whose first round waits for a person (trained once per module; a
    resume trains one more epoch)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    argv = ["train", "--epochs", "1", "--dim", "8", "--no-progress", "--rounds", "1"]
    argv += ["--budget", "32", "--strategy", "random", "--oracle", "human"]
    argv += ["--interval", "1", "--question", "pair"]
    assert cli.main([*argv, "--output", str(run)]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


@pytest.fixture(scope="module")
def trained_entity(tmp_path_factory):
    """A run whose first round of entity questions waits for a person."""
    run = tmp_path_factory.mktemp("trained_entity") / "run"
    argv = ["train", "--epochs", "1", "--dim", "8", "--no-progress", "--rounds", "1"]
    argv += ["--budget", "32", "--strategy", "random", "--oracle", "human"]
    assert cli.main([*argv, "--question", "entity", "--output", str(run)]) == 0
    return run


@pytest.fixture
def entity_run(trained_entity, tmp_path):
    copy = tmp_path / "entity_run"
    shutil.copytree(trained_entity, copy)
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
    app = create_app(run, token=TOKEN, resume=False)
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
    assert finished.json["training"] == {"started": False}
    assert not list(run.glob("resume_round*.log"))
    assert b'id="resume"' in client.get(f"/?token={TOKEN}").data
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


def file_rows(run):
    with open(run / "labels_round1.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_entity_question_takes_a_candidate_or_none(entity_run):
    app = create_app(entity_run, token=TOKEN)
    session = app.config["LABEL_SESSION"]
    client = app.test_client()
    html = client.get(f"/?token={TOKEN}").get_data(as_text=True)
    assert 'id="pick-5"' in html and "No counterpart (n)" in html
    asked = session.pairs[1].tolist()
    ids = session.pair.target[ENTITY].ids
    trainer = session.learner.trainer  # candidates: the pool's targets only
    out = torch.cat([trainer.train_links[1], trainer.test_links[1]]).tolist()
    assert not set(out) & set(session.candidates.flatten().tolist())
    other = next(c for c in session.candidates[0].tolist() if c != asked[0])
    assert post(client, "/answer", index=0, target=other).status_code == 200
    assert post(client, "/answer", index=1, label="no").status_code == 200
    form = {"token": TOKEN, "index": 2, "target": session.candidates[2, 1].item()}
    assert client.post("/answer", data=form).status_code == 303  # a pick button
    undone = post(client, "/undo").json
    assert undone["undone"] == 2 and undone["targets"][2] == asked[2]
    assert post(client, "/answer", index=3, label="no", target=other).status_code == 400
    rows = file_rows(entity_run)
    assert [row["label"] for row in rows[:3]] == ["yes", "no", ""]
    assert [row["target_id"] for row in rows[:3]] == [
        ids[other],
        *map(ids.__getitem__, asked[1:3]),
    ]
    # a restarted server reads the picked counterpart back
    app = create_app(entity_run, token=TOKEN)
    state = app.test_client().get(f"/state?token={TOKEN}").json
    assert state["labels"][:3] == ["yes", "no", ""]
    assert state["targets"][:3] == [other, *asked[1:3]]
    page = app.test_client().get(f"/?token={TOKEN}&pair=0").get_data(as_text=True)
    assert f'<code id="answered-target">{ids[other]}</code>' in page
    session = app.config["LABEL_SESSION"]
    session.finish()
    s0, s1 = session.pairs[0, :2].tolist()
    answer = session.learner.pending.answer
    assert answer.accepted.tolist() == [[s0], [other]]
    assert sorted(map(tuple, answer.rejected.t().tolist())) == sorted(
        [(s0, asked[0]), (s1, asked[1])]
    )


def test_a_pair_question_names_no_other_target(run):
    app = create_app(run, token=TOKEN)
    other = int(app.config["LABEL_SESSION"].pairs[1, 0]) + 1
    reply = post(app.test_client(), "/answer", index=0, label="yes", target=other)
    assert reply.status_code == 400 and "entity question" in reply.json["error"]


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


class TruthAndNoise(Strategy):
    """Asks true links of the pool and wrong pairs in turn: a round whose right
    answers are known and half "yes" (a model trained for one epoch, as in these
    tests, asks almost no true pair)."""

    name = "truth_and_noise"
    links = torch.empty(2, 0, dtype=torch.long)

    def _select(self, ctx: SelectionContext) -> Selection:
        links = self.links.to(ctx.source_candidates.device)
        free = torch.isin(links[0], ctx.source_candidates)
        free &= torch.isin(links[1], ctx.target_candidates)
        links = links[:, free][:, : ctx.budget]
        half = links.size(1) // 2
        true, other = links[:, :half], links[:, half : 2 * half]
        wrong = torch.stack([other[0], other[1].roll(1)])  # links are one-to-one
        pairs = torch.stack([true, wrong], dim=2).reshape(2, -1)
        score = F.cosine_similarity(
            ctx.source_emb[pairs[0]], ctx.target_emb[pairs[1]], dim=-1
        )
        return Selection(pairs[0], pairs[1], score)


@pytest.fixture
def truth_and_noise(monkeypatch):
    """Registers :class:`TruthAndNoise` for this test, given the pair's links."""

    def register(links):
        monkeypatch.setitem(STRATEGIES, TruthAndNoise.name, TruthAndNoise)
        monkeypatch.setattr(TruthAndNoise, "links", links)

    return register


def train_human_run(run, *data):
    """One round of 32 ``truth_and_noise`` pairs waiting for a person."""
    argv = ["train", *data, "--epochs", "1", "--dim", "8", "--no-progress"]
    argv += ["--rounds", "1", "--interval", "1", "--budget", "32"]
    argv += ["--pool-ratio", "0.2", "--strategy", TruthAndNoise.name]
    argv += ["--question", "pair"]
    assert cli.main([*argv, "--oracle", "human", "--output", str(run)]) == 0


def resume_and_check(command, run, answers):
    """Run the ``command`` the page gave; the round learned the "yes" answers."""
    argv = shlex.split(command)
    assert argv == ["almea-pyg", "train", "--resume", "--output", str(run)]
    assert cli.main(argv[1:]) == 0
    result = check_learned(run, answers)
    assert len(answers) == 32
    assert result["rounds"][-1]["correct"] == answers.count("yes") == 16


def check_learned(run, answers):
    """The run is done and its last round learned the "yes" answers of its label
    file, and kept the "no" answers as negatives; its ``result.json``."""
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "done"
    first, last = result["rounds"]
    assert last["asked"] == len(answers)
    assert last["gained"] == answers.count("yes")
    assert last["labelled"] == first["labelled"] + answers.count("yes")
    assert last["negatives"] == answers.count("no")
    learned = set((run / "labelled_links.tsv").read_text().splitlines())
    with open(run / "labels_round1.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [row["label"] for row in rows] == answers
    for row in rows:
        link = f"{row['source_id']}\t{row['target_id']}"
        assert (link in learned) == (row["label"] == "yes")
    return result


def browser():
    """A headless Chromium driven by selenium; a skip without one, a failure in
    CI (whose command installs it: a skip there would hide a broken install)."""
    missing = pytest.fail if os.environ.get("CI") else pytest.skip
    try:
        from selenium import webdriver
    except ImportError:
        missing("no selenium (pip install -e '.[test]')")
    driver = shutil.which("chromedriver")
    if not driver:
        missing("no chromedriver (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=driver)
    try:
        return webdriver.Chrome(options=options, service=service)
    except Exception as error:  # no browser binary, or it does not start
        missing(f"headless Chromium does not start: {error}")


def shows(driver, *texts):
    """Wait for a page that shows all ``texts`` (each answer reloads the page).

    The body's text is read in one script call: holding a reference to the body
    element races the reload (stale element, or Chrome's "node does not belong to
    the document").
    """
    from selenium.webdriver.support.ui import WebDriverWait

    script = "return document.body ? document.body.innerText : ''"
    WebDriverWait(driver, 10).until(
        lambda d: all(text in d.execute_script(script) for text in texts)
    )


def press(driver, key):
    from selenium.webdriver.common.by import By

    driver.find_element(By.TAG_NAME, "body").send_keys(key)


@pytest.mark.browser
def test_browser_labels_a_round_of_32_and_the_run_resumes(
    tmp_path, truth_and_noise, request
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    request.addfinalizer(driver.quit)
    truth_and_noise(experiment.load_pair("synthetic").links)
    run = tmp_path / "run"
    train_human_run(run)
    server = LabelServer(run, port=0, token=TOKEN, resume=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    request.addfinalizer(server.shutdown)
    answers = truth(server.app)
    assert answers == ["yes", "no"] * 16

    def answer(index):
        shows(driver, f"{index} / 32 answered", f"Pair {index + 1} of 32")
        if index % 4 < 2:  # half by button, half by key
            driver.find_element(By.ID, answers[index]).click()
        else:
            press(driver, answers[index][0])

    driver.set_window_size(1200, 1400)
    driver.get(server.url)
    for index in range(11):
        answer(index)
    shows(driver, "11 / 32 answered")
    press(driver, "u")  # undo pair 11
    shows(driver, "10 / 32 answered", "Pair 11 of 32")
    assert file_labels(run) == answers[:10] + [""] * 22
    for index in range(10, 32):
        answer(index)
    shows(driver, "32 / 32 answered", "Every pair is answered")
    assert file_labels(run) == answers
    driver.find_element(By.ID, "finish").click()
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "finished"))
    command = driver.find_element(By.ID, "resume").text
    server.shutdown()
    resume_and_check(command, run, answers)


def test_own_kgs_round_trip_through_the_page(tmp_path, truth_and_noise):
    """`train --data DIR --oracle human`, `label serve`, answer, finish, resume."""
    data = write_synthetic_tsv(tmp_path / "kgs")
    truth_and_noise(read_pair(data).links)
    run = tmp_path / "run"
    train_human_run(run, "--data", str(data))
    server = LabelServer(run, port=0, token=TOKEN, resume=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        session = server.app.config["LABEL_SESSION"]
        with urllib.request.urlopen(server.url) as response:
            html = response.read().decode()
        s, t = session.pairs[:, 0].tolist()
        source_id = session.pair.source[ENTITY].ids[s]
        target_id = session.pair.target[ENTITY].ids[t]
        assert f"<code>{source_id}</code>" in html
        assert f"<code>{target_id}</code>" in html
        answers = truth(server.app)
        for index, label in enumerate(answers):
            assert http_post(server.url, "/answer", index=index, label=label)
        finished = http_post(server.url, "/finish")
        assert (finished["yes"], finished["no"]) == (16, 16)
    finally:
        server.shutdown()
    resume_and_check(finished["resume"], run, answers)


def http_post(url, path, **data):
    """POST JSON with the token to the server at ``url``; its JSON reply."""
    request = urllib.request.Request(
        url.split("?")[0].rstrip("/") + path,
        data=json.dumps({"token": TOKEN, **data}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def http_get(url, path):
    address = f"{url.split('?')[0].rstrip('/')}{path}?token={TOKEN}"
    with urllib.request.urlopen(address, timeout=30) as response:
        return response.read()


def serve_process(run, log):
    """``almea-pyg label serve RUN`` in a child process and the address it
    prints (read through a pipe: the address must not wait in a buffer)."""
    argv = [sys.executable, "-m", "almea_pyg.cli", "label", "serve", str(run)]
    process = subprocess.Popen(
        [*argv, "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        # Ctrl-C as a user's shell gives it, whatever this process ignores
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()
    try:
        line = lines.get(timeout=300)
    except queue.Empty:
        process.kill()
        pytest.fail("label serve printed no address in 300 s")
    return process, re.search(r"http://\S+", line).group()


def test_server_killed_mid_round_loses_nothing(run, tmp_path):
    with open(tmp_path / "serve.log", "w") as log:
        given = kill_mid_round(run, log)
        labels = file_labels(run)
        assert len(labels) == 32
        assert all(labels[index] == label for index, label in given.items())
        assert labels[2] == labels[5] == ""
        process, url = serve_process(run, log)
        try:
            state = json.loads(http_get(url, "/state"))
            assert state["labels"] == labels
            assert state["answered"] == sum(1 for label in labels if label)
            assert state["current"] == 2
            assert b"Pair 3 of 32" in http_get(url, "/")
            process.send_signal(signal.SIGINT)  # Ctrl-C stops it cleanly
            assert process.wait(timeout=180) == 0  # slow only on a loaded machine
        finally:
            process.kill()


def kill_mid_round(run, log):
    """Answers through a served page, SIGKILL while answers still arrive; the
    answers the server acknowledged (a skip as ``""``)."""
    process, url = serve_process(run, log)
    given = {}
    try:
        for index, label in ((0, "yes"), (1, "no"), (2, "skip"), (3, "no")):
            http_post(url, "/answer", index=index, label=label)
            given[index] = "" if label == "skip" else label
        for index in (4, 5):
            http_post(url, "/answer", index=index, label="no")
        assert http_post(url, "/undo")["undone"] == 5
        given[4] = "no"
        assert json.loads(http_get(url, "/state"))["current"] == 5

        def burst() -> None:
            for index in range(6, 32):
                try:
                    http_post(url, "/answer", index=index, label="no")
                # killed: no connection, or a reply cut short (an empty body)
                except (OSError, http.client.HTTPException, json.JSONDecodeError):
                    return
                given[index] = "no"

        thread = threading.Thread(target=burst)
        thread.start()
        deadline = time.monotonic() + 60
        while len(given) < 8 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        thread.join(timeout=60)
    finally:
        process.kill()
    return given


@pytest.mark.browser
def test_browser_answers_entity_questions_with_candidates(entity_run, request):
    from selenium.webdriver.common.by import By

    driver = browser()
    request.addfinalizer(driver.quit)
    server = LabelServer(entity_run, port=0, token=TOKEN)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    request.addfinalizer(server.shutdown)
    candidates = server.app.config["LABEL_SESSION"].candidates.tolist()
    first = candidates[0][2]
    second = next(k for k, c in enumerate(candidates[1], 1) if c != first)
    driver.get(server.url)
    shows(driver, "0 / 32 answered", "Pair 1 of 32", "Which target is")
    press(driver, "3")  # the third candidate
    shows(driver, "1 / 32 answered", "Pair 2 of 32")
    driver.find_element(By.ID, f"pick-{second}").click()
    shows(driver, "2 / 32 answered", "Pair 3 of 32")
    press(driver, "n")  # no counterpart
    shows(driver, "3 / 32 answered", "Pair 4 of 32")
    ids = server.app.config["LABEL_SESSION"].pair.target[ENTITY].ids
    rows = file_rows(entity_run)
    assert [row["label"] for row in rows[:4]] == ["yes", "yes", "no", ""]
    picked = [ids[first], ids[candidates[1][second - 1]]]
    assert [row["target_id"] for row in rows[:2]] == picked


def answer_one_yes(url_or_client, total):
    """Answers a round: "yes" to the first pair (whether true or not), "no" to
    the rest; the answers. ``url_or_client``: a server's address or a test client."""
    answers = ["yes"] + ["no"] * (total - 1)
    for index, label in enumerate(answers):
        if isinstance(url_or_client, str):
            http_post(url_or_client, "/answer", index=index, label=label)
        else:
            assert post(url_or_client, "/answer", index=index, label=label).json
    return answers


def wait_for_training(client, timeout=300):
    """Poll ``/training`` until the resumed training ends; its last status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/training?token={TOKEN}").json
        if not status["running"]:
            return status
        time.sleep(0.5)
    pytest.fail(f"the resumed training still runs after {timeout} s")


@pytest.fixture
def stop_training(request):
    """Kills, at the end of the test, a resumed training still running."""
    apps = []
    request.addfinalizer(
        lambda: [
            app.config["LABEL_TRAINING"].process.kill()
            for app in apps
            if app.config["LABEL_TRAINING"] is not None
            and app.config["LABEL_TRAINING"].running
        ]
    )
    return apps.append


def test_finish_resumes_training_in_the_background(run, stop_training):
    app = create_app(run, token=TOKEN)
    stop_training(app)
    client = app.test_client()
    answers = answer_one_yes(client, len(truth(app)))
    finished = post(client, "/finish").json
    assert finished["error"] is None
    training = finished["training"]
    assert training["started"] and training["log"] == str(run / "resume_round1.log")
    assert app.config["LABEL_TRAINING"].argv[-6:] == [
        "train",
        "--resume",
        "--output",
        str(run),
        "--no-progress",
        "-v",
    ]
    html = client.get(f"/?token={TOKEN}").get_data(as_text=True)
    assert "training resumed" in html and 'id="training-state"' in html
    assert f'data-poll="/training?token={TOKEN}"' in html
    assert app.test_client().get("/training").status_code == 403  # no token
    status = wait_for_training(client)
    assert status["returncode"] == 0, status["tail"]
    assert status["state"] == "finished, exit code 0: the run is done"
    assert (run / "resume_round1.log").stat().st_size > 0
    check_learned(run, answers)
    assert "finished, exit code 0" in client.get(f"/?token={TOKEN}").get_data(
        as_text=True
    )


def test_label_serve_options(monkeypatch):
    calls = []
    monkeypatch.setattr(label_page, "serve", lambda run, **kwargs: calls.append(kwargs))
    assert cli.main(["label", "serve", "runs/h"]) == 0
    assert cli.main(["label", "serve", "runs/h", "--no-resume", "--remote-images"]) == 0
    assert [(c["resume"], c["remote_images"]) for c in calls] == [
        (True, False),
        (False, True),
    ]


#: Where the target entities' images are, in :func:`trained_with_images`.
REMOTE = "https://images.example.org/{}.png"


@pytest.fixture(scope="module")
def trained_with_images(tmp_path_factory):
    """A run on TSV KGs with images (every source entity a local PNG of 3 x 2
    pixels, every target entity a URL) whose round of 8 pairs waits for a
    person."""
    from matplotlib.image import imsave

    root = tmp_path_factory.mktemp("trained_with_images")
    data = write_synthetic_tsv(root / "kgs")
    (data / "source" / "pics").mkdir()
    imsave(data / "source" / "pics" / "red.png", np.ones((2, 3, 3)) * [1, 0, 0])
    for side, reference in (("source", "pics/red.png"), ("target", REMOTE)):
        kg = read_triples_kg(
            data / side / "triples.tsv", data / side / "attributes.tsv"
        )
        lines = (f"{i}\t{reference.format(k)}\n" for k, i in enumerate(kg[ENTITY].ids))
        (data / side / "images.tsv").write_text("".join(lines), encoding="utf-8")
    run = root / "run"
    argv = ["train", "--data", str(data), "--epochs", "1", "--dim", "8"]
    argv += ["--no-progress", "--rounds", "1", "--interval", "1", "--budget", "8"]
    argv += ["--strategy", "random", "--question", "pair"]
    assert cli.main([*argv, "--oracle", "human", "--output", str(run)]) == 0
    return run


@pytest.fixture
def image_run(trained_with_images, tmp_path):
    copy = tmp_path / "image_run"
    shutil.copytree(trained_with_images, copy)
    return copy


def test_images_local_served_remote_linked(image_run):
    app = create_app(image_run, token=TOKEN)
    session = app.config["LABEL_SESSION"]
    client = app.test_client()
    response = client.get(f"/?token={TOKEN}")
    html = response.get_data(as_text=True)
    s, t = session.pairs[:, 0].tolist()
    assert f'src="/image/source/{s}?token={TOKEN}"' in html
    remote = session.pair.target[ENTITY].images[session.pair.target[ENTITY].ids[t]]
    assert f'href="{remote}"' in html and 'src="https://' not in html
    assert "img-src 'self';" in response.headers["Content-Security-Policy"]

    image = client.get(f"/image/source/{s}?token={TOKEN}")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sandbox" in image.headers["Content-Security-Policy"]
    assert app.test_client().get(f"/image/source/{s}").status_code == 403
    for path in (
        f"/image/target/{t}",  # a URL: never fetched by the server
        f"/image/source/{session.pair.num_entities[0]}",
        f"/image/other/{s}",
        "/image/source/../../checkpoint.pt",
        "/image/source/%2e%2e%2fcheckpoint.pt",
        "/image",
    ):
        query = {"token": TOKEN, "path": str(image_run / "checkpoint.pt")}
        assert client.get(path, query_string=query).status_code == 404, path
    # a file the map does not list (any more) is not served, even if it exists
    del session.pair.source[ENTITY].images[session.pair.source[ENTITY].ids[s]]
    assert client.get(f"/image/source/{s}?token={TOKEN}").status_code == 404

    remote_app = create_app(image_run, token=TOKEN, remote_images=True)
    response = remote_app.test_client().get(f"/?token={TOKEN}")
    assert f'src="{remote}"' in response.get_data(as_text=True)
    assert "img-src 'self' http: https:;" in response.headers["Content-Security-Policy"]


@pytest.mark.browser
def test_browser_shows_images_and_finish_resumes_training(
    image_run, request, stop_training
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    request.addfinalizer(driver.quit)
    server = LabelServer(image_run, port=0, token=TOKEN)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    request.addfinalizer(server.shutdown)
    stop_training(server.app)
    driver.get(server.url)
    shows(driver, "0 / 8 answered", "Pair 1 of 8")
    image = driver.find_element(By.ID, "source-image")
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return arguments[0].complete", image)
    )
    assert driver.execute_script("return arguments[0].naturalWidth", image) == 3
    link = driver.find_element(By.ID, "target-image-link")
    assert re.fullmatch(REMOTE.format(r"\d+"), link.get_attribute("href"))
    assert not driver.find_elements(By.ID, "target-image")  # not embedded

    answers = answer_one_yes(server.url, 8)
    driver.refresh()
    shows(driver, "8 / 8 answered", "Every pair is answered")
    driver.find_element(By.ID, "finish").click()
    shows(driver, "training resumed", str(image_run / "resume_round1.log"))
    WebDriverWait(driver, 300).until(  # the page polls the training's state
        lambda d: "finished" in d.find_element(By.ID, "training-state").text
    )
    state = driver.find_element(By.ID, "training-state").text
    assert state == "finished, exit code 0: the run is done"
    check_learned(image_run, answers)
