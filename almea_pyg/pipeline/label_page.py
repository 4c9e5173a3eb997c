"""A local web page where a person answers a run's pending round of labels.

The page shows each asked pair in turn, with both entities' identifiers, names,
attributes and relation neighbours, the model's score and its best candidate
targets for the source, and takes yes / no / skip (buttons or the keys ``y``,
``n``, ``s``; ``u`` undoes the last answer). For an entity question (what is the
source's counterpart, or none?) a candidate can be the answer (its button or
its number key), and "no" means none. Every answer is written at once,
atomically, to the round's label file (``labels_round<N>.csv``, the format of
:func:`~almea_pyg.active.labels.write_label_request`): the file is the state,
so a server killed and started again resumes at the first open pair. "Finish
round" imports the file into the run's checkpoint and resumes the run's training
in a background process (:class:`ResumedTraining`), whose state the page polls.

An entity's image, where its KG gives one (``kg["entity"].images``, e.g. from a
TSV KG's ``images.tsv``), is shown: a local file through ``/image/<side>/<index>``,
which serves the files of that map and nothing else; a remote URL as a link, or
as an image with ``remote_images``.

Safe by default: it binds ``127.0.0.1``; every request needs a random token
(query parameter ``token``, then a cookie; a POST needs it in its form, JSON or
``X-Label-Token`` header), else 403; all KG text is escaped by Jinja; the page
loads nothing from outside the machine (inline CSS and JS only) unless
``remote_images``.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import logging
import math
import os
import secrets
import shlex
import socketserver
import subprocess
import sys
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import torch
from torch_geometric.data import HeteroData

from almea_pyg.active.labels import (
    FIELDS,
    entity_ids,
    entity_names,
    escape_cell,
    read_labels,
    write_label_request,
)
from almea_pyg.active.loop import ActiveLearner
from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.pair import link_keys
from almea_pyg.data.readers.tsv import is_image_url
from almea_pyg.io import atomic_write_text
from almea_pyg.metrics.similarity import topk_similarity
from almea_pyg.typing import ATTRIBUTE, ATTRIBUTE_EDGE, ENTITY, RELATION_EDGE

#: Candidate targets shown per source, relation neighbours and attributes per entity.
NUM_CANDIDATES = 5
NUM_NEIGHBOURS = 10
NUM_ATTRIBUTES = 20
DEFAULT_PORT = 8765
ANSWERS = ("yes", "no", "skip")
COOKIE = "almea_label_token"
HEADER = "X-Label-Token"
SIDES = ("source", "target")
#: The page's Content-Security-Policy; ``{images}``: where images may come from.
PAGE_POLICY = (
    "default-src 'none'; img-src {images}; connect-src 'self'; "
    "style-src 'unsafe-inline'; script-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'"
)
#: An image file of a KG is never run as a page (an SVG may hold a script).
IMAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
#: The log of the training "Finish round" resumes, in the run folder.
RESUME_LOG = "resume_round{round}.log"
#: Lines of that log the page shows.
LOG_TAIL_LINES = 8
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

log = logging.getLogger(__name__)


class Conflict(ValueError):
    """An answer the round cannot take (it is finished, or a second "yes")."""


class LabelSession:
    """A run's pending round and its answers; the label file holds the answers.

    Args:
        learner (ActiveLearner): A learner whose round waits for a person's
            labels (its oracle is a :class:`~almea_pyg.active.HumanOracle`).
        num_candidates (int): Candidate targets shown per source. (default: ``5``)
    """

    def __init__(
        self, learner: ActiveLearner, *, num_candidates: int = NUM_CANDIDATES
    ) -> None:
        if learner.status != "labels_pending":
            raise ValueError(f"{learner.output_dir} has no round waiting for labels")
        pending = learner.pending
        self.learner = learner
        self.pair = learner.trainer.pair
        self.round = pending.round
        self.pairs = pending.pairs.cpu()
        self.scores = pending.scores.cpu()
        self.kind = pending.kind
        self.path = learner.oracle.label_path(pending.round)
        #: The target each row names: the asked one, or the counterpart a
        #: person picked for an entity question.
        self.targets = self.pairs[1].tolist()
        self.labels = self._read()
        #: Indices answered (or skipped) in order, for undo.
        self.history = [i for i, label in enumerate(self.labels) if label]
        self.skipped: set[int] = set()
        self.finished = False
        self.lock = threading.Lock()
        self.candidate_scores, self.candidates = self._candidates(num_candidates)

    def __len__(self) -> int:
        return self.pairs.size(1)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(round {self.round}, "
            f"{self.answered}/{len(self)} answered)"
        )

    @property
    def answered(self) -> int:
        return sum(1 for label in self.labels if label)

    def current(self) -> int | None:
        """The first pair neither answered nor skipped, else ``None``."""
        for i, label in enumerate(self.labels):
            if not label and i not in self.skipped:
                return i
        return None

    def _read(self) -> list[str]:
        """The labels in the file (``""`` where open); a missing file is written."""
        if not self.path.exists():
            write_label_request(
                self.path, self.pair, self.pairs, self.scores, self.round
            )
        try:
            answer = read_labels(
                self.path, self.pair, asked=self.pairs, question=self.kind
            )
        except DataFormatError as error:
            if error.line is None:  # the file answers nothing yet
                return [""] * len(self)
            raise
        labels = [""] * len(self)
        if self.kind == "entity":  # by source: the answer may name another target
            chosen = dict(zip(*answer.accepted.tolist()))
            refused = set(answer.rejected[0].tolist())
            for i, s in enumerate(self.pairs[0].tolist()):
                if s in chosen:
                    labels[i], self.targets[i] = "yes", chosen[s]
                elif s in refused:
                    labels[i] = "no"
            return labels
        num_targets = self.pair.num_entities[1]
        keys = link_keys(self.pairs, num_targets)
        for links, label in ((answer.accepted, "yes"), (answer.rejected, "no")):
            for index in torch.isin(keys, link_keys(links, num_targets)).nonzero():
                labels[int(index)] = label
        return labels

    def _write(self) -> None:
        """The label file with the current answers (atomically)."""
        src_ids, tgt_ids = entity_ids(self.pair.source), entity_ids(self.pair.target)
        src_names = entity_names(self.pair.source)
        tgt_names = entity_names(self.pair.target)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(FIELDS)
        rows = zip(
            self.pairs[0].tolist(), self.targets, self.scores.tolist(), self.labels
        )
        for s, t, score, label in rows:
            writer.writerow(
                [
                    self.round,
                    escape_cell(src_ids[s]),
                    escape_cell(tgt_ids[t]),
                    escape_cell(src_names[s]),
                    escape_cell(tgt_names[t]),
                    f"{score:.4f}",
                    label,
                ]
            )
        atomic_write_text(buffer.getvalue(), self.path)

    def _candidates(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's ``k`` best targets (cosine) for each asked source; for an
        entity question only the targets of the pool (each can be the answer)."""
        trainer = self.learner.trainer
        emb_s, emb_t = trainer.model.embed(self.pair)
        sources = emb_s.detach().cpu()[self.pairs[0]]
        targets = torch.arange(emb_t.size(0))
        if self.kind == "entity":
            _, held_out = self.learner.pool_exclusions()
            out = torch.cat([trainer.train_links[1], held_out]).cpu()
            targets = targets[~torch.isin(targets, out)]
        scores, index = topk_similarity(sources, emb_t.detach().cpu()[targets], k)
        return scores, targets[index]

    def answer(self, index: int, label: str, target: int | None = None) -> None:
        """Answer pair ``index`` with ``"yes"``, ``"no"`` or ``"skip"``; for an
        entity question, ``"yes"`` with ``target`` names another counterpart."""
        if label not in ANSWERS:
            raise ValueError(f"answer must be one of {ANSWERS}, got {label!r}")
        if not 0 <= index < len(self):
            raise ValueError(f"no pair {index} in a round of {len(self)}")
        asked = int(self.pairs[1, index])
        target = asked if target is None else target
        if target != asked and (self.kind != "entity" or label != "yes"):
            raise ValueError("only a yes to an entity question names another target")
        if not 0 <= target < self.pair.num_entities[1]:
            raise ValueError(f"no target entity {target}")
        with self.lock:
            if self.finished:
                raise Conflict("the round is finished")
            if label == "yes":
                self._check_partners(index, target)
            self.skipped.discard(index)
            if label == "skip":
                self.skipped.add(index)
                label = ""
            self.labels[index], self.targets[index] = label, target
            self._write()
            if index in self.history:
                self.history.remove(index)
            self.history.append(index)

    def _check_partners(self, index: int, t: int) -> None:
        """Refuse a second "yes" for a source or a target (the import would)."""
        s = int(self.pairs[0, index])
        for j, label in enumerate(self.labels):
            if j != index and label == "yes":
                other_s, other_t = int(self.pairs[0, j]), self.targets[j]
                if other_s == s or other_t == t:
                    side = "source" if other_s == s else "target"
                    raise Conflict(
                        f"this {side} already has a partner (pair {j + 1}): "
                        "answer that one no first"
                    )

    def undo(self) -> int | None:
        """Clear the last answer (or skip); returns its index, ``None`` if none."""
        with self.lock:
            if self.finished:
                raise Conflict("the round is finished")
            if not self.history:
                return None
            index = self.history.pop()
            self.skipped.discard(index)
            if self.labels[index]:
                self.labels[index] = ""
                self.targets[index] = int(self.pairs[1, index])
                self._write()
            return index

    def finish(self) -> tuple[int, int]:
        """Import the file into the run and checkpoint it: ``(yes, no)`` counts."""
        with self.lock:
            if self.finished:
                raise Conflict("the round is finished")
            answer = self.learner.import_labels(self.path)
            self.learner.save_checkpoint()
            self.finished = True
        log.info("round %d: labels imported from %s", self.round, self.path)
        return answer.accepted.size(1), answer.rejected.size(1)

    def entity(self, side: int, index: int) -> dict[str, Any]:
        """What the page shows of entity ``index`` of the source (0) or target (1)."""
        kg = self.pair.source if side == 0 else self.pair.target
        image = entity_image(kg, index)
        remote = image is not None and is_image_url(image)
        return {
            "index": index,
            "id": entity_ids(kg)[index],
            "name": entity_names(kg)[index],
            "attributes": attributes(kg, index),
            "neighbours": neighbours(kg, index),
            "image": image,
            "image_remote": remote,
            "image_found": remote or (image is not None and Path(image).is_file()),
        }

    def view(self, index: int) -> dict[str, Any]:
        """Everything the page shows of asked pair ``index``."""
        s, t = self.pairs[:, index].tolist()
        tgt_ids = entity_ids(self.pair.target)
        tgt_names = entity_names(self.pair.target)
        chosen = self.targets[index] if self.labels[index] == "yes" else None
        candidates = [
            {
                "index": c,
                "id": tgt_ids[c],
                "name": tgt_names[c],
                "score": f"{score:.4f}",
                "asked": c == t,
                "chosen": c == chosen,
            }
            for score, c in zip(
                self.candidate_scores[index].tolist(), self.candidates[index].tolist()
            )
        ]
        return {
            "index": index,
            "source": self.entity(0, s),
            "target": self.entity(1, t),
            "score": f"{float(self.scores[index]):.4f}",
            "label": self.labels[index] or ("skip" if index in self.skipped else ""),
            "answer": tgt_ids[chosen] if chosen not in (None, t) else "",
            "candidates": candidates,
        }

    def rows(self) -> list[dict[str, Any]]:
        """One line per asked pair for the overview table."""
        src_ids, tgt_ids = entity_ids(self.pair.source), entity_ids(self.pair.target)
        return [
            {
                "index": i,
                "source": src_ids[s],
                "target": tgt_ids[t],
                "label": self.labels[i] or ("skip" if i in self.skipped else ""),
            }
            for i, (s, t) in enumerate(zip(self.pairs[0].tolist(), self.targets))
        ]


def entity_image(kg: HeteroData, index: int) -> str | None:
    """The image (local path or URL) the KG gives entity ``index``, if any."""
    images = kg[ENTITY].get("images") or {}
    return images.get(entity_ids(kg)[index])


class ResumedTraining:
    """``almea-pyg train --resume`` of a run in a background process, as "Finish
    round" starts it; its output (stdout and stderr) goes to ``log_path``.

    The process is a session of its own: stopping the labelling server (Ctrl-C)
    leaves the training running.

    Args:
        run_dir (str or os.PathLike): The run folder.
        log_path (str or os.PathLike): The log file (written anew).
    """

    def __init__(self, run_dir: str | os.PathLike, log_path: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.log_path = Path(log_path)
        self.argv = [sys.executable, "-m", "almea_pyg.cli", "train", "--resume"]
        self.argv += ["--output", str(self.run_dir), "--no-progress", "-v"]
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},  # a live log
                start_new_session=True,
            )
        log.info(
            "training of %s resumed (process %d), output in %s",
            self.run_dir,
            self.process.pid,
            self.log_path,
        )

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.run_dir}, {self.describe()})"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def describe(self) -> str:
        """``running``, else the exit code and what the run waits for."""
        code = self.process.poll()
        if code is None:
            return "running"
        text = f"finished, exit code {code}"
        if code != 0:
            return f"{text}: see the log"
        try:
            result = json.loads((self.run_dir / "result.json").read_text())
        except (OSError, ValueError):
            return text
        if result.get("status") == "labels_pending":
            return f"{text}: the next round waits for labels (serve the page again)"
        return f"{text}: the run is {result.get('status', 'done')}"

    def status(self) -> dict[str, Any]:
        """What the page polls: state, exit code, log file and its last lines."""
        code = self.process.poll()
        return {
            "started": True,
            "running": code is None,
            "returncode": code,
            "state": self.describe(),
            "log": str(self.log_path),
            "tail": log_tail(self.log_path),
        }


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file (``""`` if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def attributes(
    kg: HeteroData, index: int, k: int = NUM_ATTRIBUTES
) -> list[tuple[str, str]]:
    """Up to ``k`` ``(attribute name, value)`` of entity ``index`` (value may be "")."""
    if ATTRIBUTE_EDGE not in kg.edge_types:
        return []
    store = kg[ATTRIBUTE_EDGE]
    names = kg[ATTRIBUTE].get("names") or []
    values = store.get("value")
    out = []
    for f in (store.edge_index[0] == index).nonzero().view(-1)[:k].tolist():
        a = int(store.edge_index[1, f])
        value = float(values[f]) if values is not None else math.nan
        name = names[a] if a < len(names) else str(a)
        out.append((name, "" if math.isnan(value) else f"{value:g}"))
    return out


def neighbours(
    kg: HeteroData, index: int, k: int = NUM_NEIGHBOURS
) -> list[tuple[str, str, str]]:
    """Up to ``k`` ``(direction, relation name, neighbour)`` of entity ``index``.

    Outgoing edges first (direction ``"→"``), then incoming (``"←"``); the
    neighbour is its name, else its identifier.
    """
    store = kg[RELATION_EDGE]
    edge_index, edge_type = store.edge_index, store.get("edge_type")
    relation_names = store.get("relation_names") or []
    ids, names = entity_ids(kg), entity_names(kg)
    out = []
    for direction, here, there in (("→", 0, 1), ("←", 1, 0)):
        for e in (edge_index[here] == index).nonzero().view(-1).tolist():
            if len(out) == k:
                return out
            other = int(edge_index[there, e])
            r = int(edge_type[e]) if edge_type is not None else -1
            relation = relation_names[r] if 0 <= r < len(relation_names) else str(r)
            out.append((direction, relation, names[other] or ids[other]))
    return out


def create_app(
    run_dir: str | os.PathLike,
    *,
    token: str | None = None,
    num_candidates: int = NUM_CANDIDATES,
    resume: bool = True,
    remote_images: bool = False,
) -> Any:
    """The labelling page of the run in ``run_dir`` (its pending round): a
    :class:`flask.Flask` app (needs ``flask``: ``pip install almea-pyg[serve]``).

    Args:
        run_dir (str or os.PathLike): A run folder whose round waits for labels.
        token (str, optional): The secret every request must carry; a random
            one if ``None`` (``app.config["LABEL_TOKEN"]``).
        num_candidates (int): Candidate targets shown per source. (default: ``5``)
        resume (bool): "Finish round" also resumes the run's training in a
            background process (``app.config["LABEL_TRAINING"]``, a
            :class:`ResumedTraining`); else it only shows the command that
            does. (default: ``True``)
        remote_images (bool): Embed images given as remote URLs (the browser
            fetches them from their servers); else they are links.
            (default: ``False``)
    """
    import flask

    from almea_pyg.pipeline.experiment import restore_learner

    run_dir = Path(run_dir)
    session = LabelSession(restore_learner(run_dir), num_candidates=num_candidates)
    token = token or secrets.token_urlsafe(24)
    app = flask.Flask(__name__)
    app.config.update(
        LABEL_TOKEN=token,
        LABEL_SESSION=session,
        LABEL_TRAINING=None,
        MAX_CONTENT_LENGTH=1 << 16,
    )
    command = f"almea-pyg train --resume --output {shlex.quote(str(run_dir))}"
    policy = PAGE_POLICY.format(
        images="'self' http: https:" if remote_images else "'self'"
    )

    def given_token() -> str:
        request = flask.request
        body = request.get_json(silent=True) if request.is_json else None
        candidates = [
            request.args.get("token"),
            request.headers.get(HEADER),
            request.form.get("token") if request.method == "POST" else None,
            body.get("token") if isinstance(body, dict) else None,
        ]
        if request.method == "GET":  # a cookie alone never authorises a change
            candidates.append(request.cookies.get(COOKIE))
        return next((c for c in candidates if isinstance(c, str) and c), "")

    @app.before_request
    def check_token() -> flask.Response | None:
        if not hmac.compare_digest(given_token().encode(), token.encode()):
            return flask.Response("403 Forbidden: a valid token is needed\n", 403)
        return None

    @app.after_request
    def harden(response: flask.Response) -> flask.Response:
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.update(SECURITY_HEADERS)
        if response.status_code < 400 and flask.request.args.get("token") == token:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    def reply(payload: dict[str, Any], status: int = 200) -> flask.Response:
        """JSON for a JSON request, else back to the page (or the error shown)."""
        if flask.request.is_json:
            response = flask.jsonify(payload)
            response.status_code = status
            return response
        if status >= 400:
            return page(error=payload["error"], status=status)
        return flask.redirect(flask.url_for("index", token=token), 303)

    def state() -> dict[str, Any]:
        return {
            "answered": session.answered,
            "total": len(session),
            "current": session.current(),
            "labels": session.labels,
            "targets": session.targets,
            "finished": session.finished,
        }

    def page(
        *, error: str | None = None, status: int = 200, shown: int | None = None
    ) -> flask.Response:
        if shown is None:
            shown = session.current()
        html = flask.render_template_string(
            PAGE,
            session=session,
            token=token,
            pair=None if shown is None or session.finished else session.view(shown),
            rows=session.rows(),
            error=error,
            resume=command,
            run=str(run_dir),
            remote_images=remote_images,
            training=training_status(),
        )
        return flask.Response(html, status)

    @app.get("/")
    def index() -> flask.Response:
        shown = flask.request.args.get("pair", type=int)
        if shown is not None and not 0 <= shown < len(session):
            shown = None
        return page(shown=shown)

    @app.get("/state")
    def get_state() -> flask.Response:
        return flask.jsonify(state())

    def training_status() -> dict[str, Any]:
        training = app.config["LABEL_TRAINING"]
        return training.status() if training is not None else {"started": False}

    @app.get("/training")
    def get_training() -> flask.Response:
        return flask.jsonify(training_status())

    @app.get("/image/<side>/<int:index>")
    def image(side: str, index: int) -> flask.Response:
        """The local file the KG's image map gives an entity, and nothing else."""
        if side not in SIDES:
            flask.abort(404)
        kg = session.pair.source if side == SIDES[0] else session.pair.target
        if index >= kg[ENTITY].num_nodes:
            flask.abort(404)
        reference = entity_image(kg, index)
        if reference is None or is_image_url(reference):
            flask.abort(404)
        path = Path(reference).absolute()
        if not path.is_file():
            flask.abort(404)
        response = flask.send_file(path, max_age=0)
        response.headers["Content-Security-Policy"] = IMAGE_POLICY
        return response

    @app.post("/answer")
    def post_answer() -> flask.Response:
        data = flask.request.get_json(silent=True) or flask.request.form
        try:
            target = data.get("target")  # a candidate's button: "yes" to it
            target = None if target in (None, "") else int(target)
            label = data.get("label") or ("yes" if target is not None else "")
            session.answer(int(data.get("index", -1)), str(label), target)
        except Conflict as error:
            return reply({"error": str(error), **state()}, 409)
        except (TypeError, ValueError) as error:
            return reply({"error": str(error), **state()}, 400)
        return reply(state())

    @app.post("/undo")
    def post_undo() -> flask.Response:
        try:
            undone = session.undo()
        except Conflict as error:
            return reply({"error": str(error), **state()}, 409)
        return reply({"undone": undone, **state()})

    @app.post("/finish")
    def post_finish() -> flask.Response:
        try:
            yes, no = session.finish()
        except Conflict as error:
            return reply({"error": str(error), **state()}, 409)
        except DataFormatError as error:
            return reply({"error": str(error), **state()}, 400)
        failed = None
        if resume:
            log_path = run_dir / RESUME_LOG.format(round=session.round)
            try:
                app.config["LABEL_TRAINING"] = ResumedTraining(run_dir, log_path)
            except OSError as error:
                log.error("training of %s did not start: %s", run_dir, error)
                failed = f"the training did not start ({error}): run it by hand"
        if flask.request.is_json:
            return flask.jsonify(
                {
                    "yes": yes,
                    "no": no,
                    "resume": command,
                    "training": training_status(),
                    "error": failed,
                    **state(),
                }
            )
        return page(error=failed)

    return app


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class LabelServer:
    """A threaded HTTP server for :func:`create_app`; ``url`` carries the token.

    Args:
        run_dir (str or os.PathLike): The run folder.
        host (str): Address to bind; only this machine by default.
        port (int): Port; ``0`` takes a free one. (default: ``8765``)
        token (str, optional): The secret; a random one if ``None``.
        resume (bool): "Finish round" resumes training. (default: ``True``)
        remote_images (bool): Embed remote images. (default: ``False``)
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        token: str | None = None,
        resume: bool = True,
        remote_images: bool = False,
    ) -> None:
        if host not in ("127.0.0.1", "localhost"):
            log.warning(
                "serving on %s: anyone who can reach it and has the token can "
                "answer, over plain HTTP",
                host,
            )
        self.app = create_app(
            run_dir, token=token, resume=resume, remote_images=remote_images
        )
        self.server = make_server(
            host, port, self.app, server_class=_ThreadingServer, handler_class=_Handler
        )
        self.url = (
            f"http://{host}:{self.server.server_port}/"
            f"?token={self.app.config['LABEL_TOKEN']}"
        )

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.app.config['LABEL_SESSION']!r})"

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (running in another thread) and close."""
        self.server.shutdown()
        self.server.server_close()


def serve(
    run_dir: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    open_browser: bool = False,
    announce: Callable[[str], None] | None = None,
    resume: bool = True,
    remote_images: bool = False,
) -> None:
    """Serve the labelling page of ``run_dir`` until interrupted (Ctrl-C).

    The address with its token goes to ``announce`` (default: logged at
    ``INFO``); :class:`LabelServer` gives it as ``url`` before serving.
    ``resume`` and ``remote_images``: see :func:`create_app`.
    """
    server = LabelServer(
        run_dir,
        host=host,
        port=port,
        token=token,
        resume=resume,
        remote_images=remote_images,
    )
    if announce is not None:
        announce(server.url)
    else:
        log.info("labelling page of %s at %s", run_dir, server.url)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("labelling page stopped")
    finally:
        server.server.server_close()
        training = server.app.config["LABEL_TRAINING"]
        if training is not None and training.running:
            log.warning(
                "the resumed training goes on (process %d); its output: %s",
                training.process.pid,
                training.log_path,
            )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Round {{ session.round }} labels – almea-pyg</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:70em;
  padding:0 1em;color:#222}
h1{font-size:1.3em}.muted{color:#777}
.error{background:#fdd;padding:.5em;border:1px solid #c00}
.done{background:#dfd;padding:.5em;border:1px solid #0a0}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:1em}
.side{border:1px solid #ccc;border-radius:6px;padding:.6em 1em}
.side h2{font-size:1.1em;margin:.2em 0}code{background:#f4f4f4;padding:0 .2em}
table{border-collapse:collapse}
td,th{padding:.1em .6em;text-align:left;vertical-align:top}
tr.asked{font-weight:bold}progress{width:20em}
.buttons{margin:1em 0}
.buttons button{font-size:1.1em;padding:.4em 1.2em;margin-right:.5em}
.yes{background:#cfc}.no{background:#fcc}.label-yes{color:#070}.label-no{color:#a00}
details{margin-top:1.5em}.image img{max-width:100%;max-height:16em}
pre{background:#f4f4f4;padding:.5em;white-space:pre-wrap}pre:empty{display:none}
</style></head><body>
<h1>Round {{ session.round }} of <code>{{ run }}</code></h1>
<p><progress max="{{ session|length }}" value="{{ session.answered }}"></progress>
<span id="progress">{{ session.answered }} / {{ session|length }} answered</span>
<span class="muted">· file <code>{{ session.path }}</code></span></p>
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
{% if session.finished and training.started %}
<p class="done" id="finished">Labels imported into the run; training resumed
(<code id="resume">{{ resume }}</code>).<br>
Output: <code id="log">{{ training.log }}</code><br>
Training: <b id="training-state" data-poll="/training?token={{ token }}"
data-running="{{ 1 if training.running else 0 }}">{{ training.state }}</b></p>
<pre id="log-tail">{{ training.tail }}</pre>
{% elif session.finished %}
<p class="done" id="finished">Labels imported into the run. Resume training with:<br>
<code id="resume">{{ resume }}</code></p>
{% elif pair %}
<p>Pair {{ pair.index + 1 }} of {{ session|length }} · model score
<b id="score">{{ pair.score }}</b>
{% if pair.label %} · answered
<b class="label-{{ pair.label }}">{{ pair.label }}</b>{% if pair.answer %}:
<code id="answered-target">{{ pair.answer }}</code>{% endif %}{% endif %}</p>
{% if session.kind == "entity" %}<p id="question">Which target is the source's
counterpart? Yes: the target shown; a candidate below: its button or number key;
No: it has none.</p>{% endif %}
<div class="sides">
{% for title, e in (("source", pair.source), ("target", pair.target)) %}
<div class="side" id="{{ title }}"><h2>{{ title }}: {{ e.name or e.id }}</h2>
<p>id <code>{{ e.id }}</code></p>
{% if e.image %}<p class="image">{% if not e.image_found %}<span class="muted"
id="{{ title }}-image-missing">image not found: <code>{{ e.image }}</code></span>
{% elif not e.image_remote %}<img id="{{ title }}-image" alt="image of {{ e.id }}"
src="/image/{{ title }}/{{ e.index }}?token={{ token }}">
{% elif remote_images %}<img id="{{ title }}-image" alt="image of {{ e.id }}"
src="{{ e.image }}" referrerpolicy="no-referrer">
{% else %}image: <a id="{{ title }}-image-link" href="{{ e.image }}"
rel="noopener noreferrer" target="_blank">{{ e.image }}</a>
<span class="muted">(not loaded: a remote address)</span>{% endif %}</p>{% endif %}
<h3>Attributes</h3>
{% if e.attributes %}<table>{% for name, value in e.attributes %}
<tr><td>{{ name }}</td><td>{{ value or "—" }}</td></tr>{% endfor %}</table>
{% else %}<p class="muted">none</p>{% endif %}
<h3>Neighbours</h3>
{% if e.neighbours %}<table>{% for direction, relation, other in e.neighbours %}
<tr><td>{{ direction }}</td><td>{{ relation }}</td><td>{{ other }}</td></tr>{% endfor %}
</table>{% else %}<p class="muted">none</p>{% endif %}
</div>{% endfor %}
</div>
<h3>The model's best targets for this source</h3>
<table id="candidates"><tr><th>target</th><th>name</th><th>cosine</th></tr>
{% for c in pair.candidates %}<tr{% if c.asked %} class="asked"{% endif %}>
<td><code>{{ c.id }}</code></td><td>{{ c.name }}</td><td>{{ c.score }}</td>
{% if session.kind == "entity" %}<td><button form="answer" name="target"
value="{{ c.index }}" id="pick-{{ loop.index }}">{% if c.chosen %}✓ {% endif %}This
one ({{ loop.index }})</button></td>{% endif %}</tr>
{% endfor %}
</table>
<form method="post" action="/answer" class="buttons" id="answer">
<input type="hidden" name="token" value="{{ token }}">
<input type="hidden" name="index" value="{{ pair.index }}">
{% if session.kind == "entity" %}
<button class="yes" name="label" value="yes" id="yes">Yes, the target shown (y)</button>
<button class="no" name="label" value="no" id="no">No counterpart (n)</button>
{% else %}
<button class="yes" name="label" value="yes" id="yes">Yes, same entity (y)</button>
<button class="no" name="label" value="no" id="no">No (n)</button>
{% endif %}
<button name="label" value="skip" id="skip">Skip (s)</button>
</form>
{% else %}
{% set open = session|length - session.answered %}
<p id="all-seen">Every pair is answered or skipped{% if open %}
({{ open }} open: they stay unlabelled){% endif %}.</p>
{% endif %}
{% if not session.finished %}
<form method="post" action="/undo" class="buttons">
<input type="hidden" name="token" value="{{ token }}">
<button id="undo">Undo last answer (u)</button></form>
<form method="post" action="/finish" class="buttons"
{% if session.answered < session|length %} onsubmit="return confirm(
'{{ session|length - session.answered }} pairs have no answer and stay unlabelled.')"
{% endif %}>
<input type="hidden" name="token" value="{{ token }}">
<button id="finish">Finish round</button></form>
{% endif %}
<details><summary>All pairs</summary><table id="pairs">
<tr><th>#</th><th>source</th><th>target</th><th>answer</th></tr>
{% for r in rows %}<tr><td>{% if session.finished %}{{ r.index + 1 }}{% else %}
<a href="/?pair={{ r.index }}">{{ r.index + 1 }}</a>{% endif %}</td>
<td><code>{{ r.source }}</code></td><td><code>{{ r.target }}</code></td>
<td class="label-{{ r.label }}">{{ r.label }}</td></tr>{% endfor %}
</table></details>
<script>
document.addEventListener("keydown", function (event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  var id = /^[1-9]$/.test(event.key) ? "pick-" + event.key
    : {y: "yes", n: "no", s: "skip", u: "undo"}[event.key];
  var button = id && document.getElementById(id);
  if (button) { event.preventDefault(); button.click(); }
});
var training = document.getElementById("training-state");
if (training && training.dataset.running === "1") {
  var poll = setInterval(function () {
    fetch(training.dataset.poll).then(function (response) {
      return response.json();
    }).then(function (status) {
      training.textContent = status.state;
      document.getElementById("log-tail").textContent = status.tail;
      if (!status.running) clearInterval(poll);
    });
  }, 1000);
}
</script>
</body></html>
"""
