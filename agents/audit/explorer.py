"""``colearn explorer``: a local, read-only web page of one contract's experiments.

A standard-library HTTP server on 127.0.0.1 serves one self-contained page
(:mod:`agents.audit.explorer_page`: no external assets) and JSON read from the chain:

* ``/api/info``: chain, contract, latest block, where transaction links point;
* ``/api/experiments``: every experiment in the contract, with its audit verdict;
* ``/api/experiments/ID``: one experiment's configuration (with its metadata's content,
  fetched from the weight store when one is given), rounds, vote grid, checks, and
  whether it is stalled (:mod:`agents.audit.stall`);
* ``/api/experiments/ID/scores.png`` and ``votes.png``: colearn's two plots;
* ``/tx/HASH`` and ``/block/N``: the transaction's receipt (with the contract's events
  decoded) or the block, as JSON: the default target of the page's links when no block
  explorer is given (``--explorer-url``).

Each experiment's history is read incrementally (:class:`agents.audit.reader.HistoryReader`):
a request reads only the logs that landed since the last one, at most once per poll
interval. The page polls the JSON, so new rounds appear as they land. The server only
reads: it sends no transaction and holds no key.

Whatever a request holds (any path, query, method or bytes), the answer is a page or a
4xx with a short JSON message and one log line: ids and block numbers are parsed within
what the chain can hold before anything is read. Only a node that cannot be reached (502)
or a bug (500) answers otherwise.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from eth_utils import function_signature_to_4byte_selector
from rich.console import Console

from agents._utils.http import BackgroundHttpServer
from agents.audit.checks import AuditReport, audit_history
from agents.audit.errors import AuditError, UnknownExperiment
from agents.audit.explorer_page import render_page
from agents.audit.history import History
from agents.audit.ledger import ledger
from agents.audit.metadata import Metadata, fetch_metadata
from agents.audit.reader import HistoryReader
from agents.audit.report import grid_values, scores_png, stall_json, votes_png
from agents.audit.rows import join_rows
from agents.audit.stall import clock, find_stall
from agents.chain.abi import EventDecoder, load_artifact
from agents.chain.client import CollectiveLearningClient
from agents.chain.errors import ChainError, ContractRevert, MalformedEvent, brief
from agents.chain.logs import RawLog
from agents.chain.types import MAX_UINT256, RoundState
from agents.storage.store import WeightStore
from colearn_core.plots import GRID_COLOURS, GRID_LABELS

log = logging.getLogger(__name__)

#: Experiments listed on the front page at most (the newest; the count is the contract's
#: word, and a hostile contract may claim 2^256 - 1).
MAX_LISTED = 100
MAX_BLOCK = 2**63 - 1  # block numbers a node takes
_MESSAGE_CHARS = 200  # an error message's length at most


class BadRequest(ValueError):
    """A request the explorer cannot answer: a 4xx with a short message."""

    def __init__(self, status: HTTPStatus, message: str):
        self.status = status
        super().__init__(_clip(message, _MESSAGE_CHARS))


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def parse_number(text: str, what: str, lowest: int, highest: int) -> int:
    """A decimal number from a path, within [lowest, highest]; else :class:`BadRequest`
    (404: nothing can be there). Never parses more digits than ``highest`` has."""
    if not text.isascii() or not text.isdigit() or len(text) > len(str(highest)):
        raise BadRequest(HTTPStatus.NOT_FOUND, f"no {what} {_clip(text, 24)}: {what}s run "
                                               f"from {lowest} to {highest}")
    value = int(text)
    if not lowest <= value <= highest:
        raise BadRequest(HTTPStatus.NOT_FOUND, f"no {what} {_clip(text, 24)}: {what}s run "
                                               f"from {lowest} to {highest}")
    return value


class Explorer:
    """What the server shows, read from the chain and cached between polls."""

    def __init__(self, client: CollectiveLearningClient, *, explorer_url: str | None = None,
                 poll: float = 2.0, store: WeightStore | None = None):
        self.client = client
        self.store = store  # where the experiments' metadata is fetched from (optional)
        self._metadata: dict[str, Metadata] = {}
        self.explorer_url = explorer_url.rstrip("/") if explorer_url else None
        self.poll = poll
        self._lock = threading.Lock()
        self._readers: dict[int, HistoryReader] = {}
        self._fresh: dict[int, float] = {}  # when each reader last updated
        self._reports: dict[int, tuple[int, AuditReport]] = {}
        self._plots: dict[tuple[int, str], tuple[int, bytes]] = {}
        self._decoder = EventDecoder()
        self._functions = {
            function_signature_to_4byte_selector(
                f"{f['name']}({','.join(_abi_type(i) for i in f['inputs'])})"): f["name"]
            for f in load_artifact()["abi"] if f.get("type") == "function"}

    def close(self) -> None:
        with self._lock:
            self._readers.clear()
        if self.store is not None:
            self.store.close()

    def metadata(self, cid: str) -> Metadata:
        """The metadata of ``cid`` (a CID's content never changes: fetched once; a failed
        fetch is tried again on the next request)."""
        with self._lock:
            cached = self._metadata.get(cid)
        if cached is None:
            cached = fetch_metadata(cid, self.store)
            if cached.fetched:
                with self._lock:
                    self._metadata[cid] = cached
        return cached

    def now(self) -> int:
        """The clock a stall is measured on (:func:`agents.audit.stall.clock`)."""
        return clock(self.client.chain_time())

    # ------------------------------------------------------------------ reading

    def _report(self, experiment_id: int) -> AuditReport:
        """The experiment's history and checks, read again if a poll interval passed."""
        with self._lock:
            reader = self._readers.get(experiment_id)
            if reader is None:
                reader = HistoryReader(self.client, experiment_id,
                                       from_block=self.client.first_block)
                reader.update()
                self._readers[experiment_id] = reader
                self._fresh[experiment_id] = time.monotonic()
            elif time.monotonic() - self._fresh.get(experiment_id, -1e9) >= self.poll / 2:
                reader.update()
                self._fresh[experiment_id] = time.monotonic()
            cached = self._reports.get(experiment_id)
            if cached is None or cached[0] != reader.version:
                cached = self._reports[experiment_id] = (reader.version,
                                                         audit_history(reader.history()))
            else:  # the same events; the views (round, model) may have moved on
                cached[1].history.view = reader.view
            return cached[1]

    def info(self) -> dict[str, Any]:
        return {"chain_id": self.client.chain_id, "contract": self.client.address,
                "latest_block": self.client.block_number(), "explorer_url": self.explorer_url,
                "poll_seconds": self.poll}

    def experiments(self) -> list[dict[str, Any]]:
        """The newest :data:`MAX_LISTED` experiments; one that cannot be read is listed
        with its error."""
        try:
            count = self.client.experiment_count()
        except ChainError as exc:
            if "cannot reach" in str(exc) and not isinstance(exc, ContractRevert):
                raise
            raise AuditError(f"the contract's experimentCount() fails: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - revert data that eth-abi cannot decode
            raise AuditError(f"the contract's experimentCount() fails: {brief(exc)}") from None
        out = []
        now = self.now() if count else 0
        for experiment_id in range(max(1, count - MAX_LISTED + 1), count + 1):
            try:
                out.append(self._summary(self._report(experiment_id), now))
            except ChainError as exc:
                if "cannot reach" in str(exc):
                    raise
                out.append({"id": experiment_id, "error": _clip(str(exc), _MESSAGE_CHARS)})
        return out

    def _summary(self, report: AuditReport, now: int) -> dict[str, Any]:
        h = report.history
        cfg = h.config
        try:
            state = RoundState(self.client.state(cfg.experiment_id)).name.lower()
        except Exception as exc:  # noqa: BLE001 - a node error, or a hostile contract's
            # answer that web3 or eth-abi cannot decode: the state is shown as unknown
            log.debug("state(%d) failed: %s", cfg.experiment_id, brief(exc))
            state = "unknown"
        return {"id": cfg.experiment_id, "learners": len(cfg.learners),
                "threshold_bps": cfg.threshold_bps, "num_rounds": cfg.num_rounds,
                "closed_rounds": h.closed_rounds, "joined": len(h.joins),
                "accepted_rounds": sum(1 for r in h.rounds if r.decision and r.decision.accepted),
                "state": state, "created_block": cfg.block_number, "creator": cfg.creator,
                "ok": report.ok, "violations": len(report.violations),
                "stalled": stall_json(find_stall(h, now))}

    def experiment(self, experiment_id: int) -> dict[str, Any]:
        report = self._report(experiment_id)
        h = report.history
        closed = [r for r in h.rounds if r.closed]
        metadata = self.metadata(h.config.metadata_cid)
        return {
            **self._summary(report, self.now()),
            "metadata": {**metadata.model_dump(mode="json"), "text": metadata.text()},
            "version": self._readers[experiment_id].version,
            "config": {**h.config.model_dump(mode="json"),
                       # amounts as strings: wei overflow JavaScript's exact integers
                       "options": {k: v if isinstance(v, str) else str(v) for k, v in
                                   h.config.options.model_dump(mode="json").items()},
                       "sealed": h.config.options.sealed, "staked": h.config.options.staked},
            "money": _money_json(h),
            "view": None if h.view is None else h.view.model_dump(mode="json"),
            "completion": None if h.completion is None else h.completion.model_dump(mode="json"),
            "joins": [j.model_dump(mode="json") for j in join_rows(h)],
            "start": None if h.start is None else h.start.model_dump(mode="json"),
            "cancellation": None if h.cancellation is None
            else h.cancellation.model_dump(mode="json"),
            "rounds": [_round_json(r) for r in h.rounds],
            "grid": {"labels": GRID_LABELS, "colours": GRID_COLOURS,
                     "rounds": [r.round for r in closed], "values": grid_values(h)},
            "violations": [v.model_dump(mode="json") for v in report.violations],
            "checks": [c.model_dump(mode="json") for c in report.checks],
            "total_gas": h.total_gas,
        }

    def plot(self, experiment_id: int, kind: str) -> bytes:
        report = self._report(experiment_id)
        version = self._readers[experiment_id].version
        key = (experiment_id, kind)
        with self._lock:
            cached = self._plots.get(key)
            if cached is not None and cached[0] == version:
                return cached[1]
        history: History = report.history
        png = (scores_png(history, self.metadata(history.config.metadata_cid))
               if kind == "scores" else votes_png(history))
        with self._lock:
            self._plots[key] = (version, png)
        return png

    def tx(self, tx_hash: str) -> dict[str, Any]:
        w3 = self.client.w3
        try:
            receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            tx = w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - unknown hash, node errors
            raise LookupError(f"no transaction {tx_hash}: {exc}") from None
        events = []
        for entry in receipt["logs"]:
            if entry["address"] != self.client.address:
                continue
            raw = RawLog(tuple(bytes(t) for t in entry["topics"]), bytes(entry["data"]),
                         int(entry["blockNumber"]), tx_hash, int(entry["logIndex"]), False)
            try:
                name, fields = self._decoder.decode(raw)
            except MalformedEvent:
                continue
            events.append({"event": name, "log_index": raw.log_index, **fields})
        return {"hash": tx_hash, "block_number": receipt["blockNumber"], "from": receipt["from"],
                "to": receipt["to"], "status": receipt["status"], "gas_used": receipt["gasUsed"],
                "function": self._functions.get(bytes(tx["input"])[:4], "unknown"),
                "events": events}

    def block(self, number: int) -> dict[str, Any]:
        try:
            block = self.client.w3.eth.get_block(number)
        except Exception as exc:  # noqa: BLE001
            raise LookupError(f"no block {number}: {exc}") from None
        return {"number": block["number"], "hash": "0x" + bytes(block["hash"]).hex(),
                "timestamp": block["timestamp"], "gas_used": block["gasUsed"],
                "transactions": ["0x" + bytes(t).hex()  # type: ignore[arg-type]  # hashes
                                 for t in block["transactions"]]}


def _abi_type(param: dict[str, Any]) -> str:
    """A parameter's type as a function signature spells it (tuples expanded)."""
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][len('tuple'):]}"
    return param["type"]


def _money_json(h: History) -> dict[str, Any] | None:
    """A staked experiment's pool, penalties, shares and each account's owed and withdrawn
    amounts (as strings: wei overflow JavaScript's exact integers), from the events."""
    if not h.config.options.staked:
        return None
    book = ledger(h)
    amounts = ("reward_pool", "penalties", "pool", "proposer_part", "voter_part",
               "creator_owed", "deposited", "withdrawn")
    return {**{k: str(getattr(book, k)) for k in amounts},
            "finished": book.finished, "proposer_shares": book.proposer_shares,
            "voter_shares": book.voter_shares,
            "accounts": [{**a.model_dump(), **{k: str(getattr(a, k)) for k in
                                               ("deposited", "penalties", "owed", "withdrawn")},
                          "creator": a.address == h.config.creator}
                         for a in book.accounts]}


def _round_json(r: Any) -> dict[str, Any]:
    p, closing = r.proposal, r.closing
    return {"round": r.round, "proposer": r.proposer, "proposer_index": r.proposer_index,
            "outcome": r.outcome, "cid": p.cid if p else None, "digest": p.digest if p else None,
            "proposal_tx": p.tx_hash if p else None,
            "approvals": r.decision.approvals if r.decision else None,
            "rejections": r.decision.rejections if r.decision else None,
            "votes": [{"learner_index": v.learner_index, "voter": v.voter, "approve": v.approve,
                       "score": v.vote_score, "tx_hash": v.tx_hash} for v in r.votes],
            "close_tx": closing.tx_hash if closing else None,
            "close_block": closing.block_number if closing else None,
            "closed_at": closing.timestamp if closing else None,
            "commits": len(r.commits),
            "penalties": [{"learner": x.learner, "learner_index": x.learner_index,
                           "reason": x.reason, "amount": str(x.amount), "tx_hash": x.tx_hash}
                          for x in r.penalties],
            "txs": [t.model_dump(mode="json") for t in r.txs], "gas": r.gas}


# -------------------------------------------------------------------------- server

_ROUTES = [
    (re.compile(r"^/api/info$"), "info"),
    (re.compile(r"^/api/experiments$"), "experiments"),
    (re.compile(r"^/api/experiments/([^/]+)$"), "experiment"),
    (re.compile(r"^/api/experiments/([^/]+)/(scores|votes)\.png$"), "plot"),
    (re.compile(r"^/tx/(0x[0-9a-fA-F]{64})$"), "tx"),
    (re.compile(r"^/block/([^/]+)$"), "block"),
]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s -> %s", self.address_string(), _clip(self.requestline, 120), code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), _clip(format % args, 200))

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Requests that do not parse (bad request line, headers): a 4xx like the others
        (a method the server lacks is 405, not http.server's 501)."""
        status = HTTPStatus(code)
        if status == HTTPStatus.NOT_IMPLEMENTED:
            status = HTTPStatus.METHOD_NOT_ALLOWED
            message = "the explorer is read-only: GET only"
        self.close_connection = True
        self._error(status, message or status.phrase)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        try:
            self._get(path)
        except BadRequest as exc:
            self._error(exc.status, str(exc))
        except (LookupError, ContractRevert, UnknownExperiment) as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
        except AuditError as exc:  # the contract's logs cannot be read as an experiment
            self._error(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))
        except ChainError as exc:
            self._error(HTTPStatus.BAD_GATEWAY, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:
            log.exception("explorer: %s failed", _clip(path))
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": brief(exc)})

    def _get(self, path: str) -> None:
        explorer = self.server.explorer
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8",
                       render_page(explorer.client.address, explorer.poll).encode())
            return
        for pattern, name in _ROUTES:
            match = pattern.match(path)
            if match is None:
                continue
            if name == "plot":
                experiment_id = parse_number(match[1], "experiment", 1, MAX_UINT256)
                self._send(HTTPStatus.OK, "image/png", explorer.plot(experiment_id, match[2]))
                return
            if name in ("info", "experiments"):
                body = getattr(explorer, name)()
            elif name == "tx":
                body = explorer.tx(match[1])
            elif name == "block":
                body = explorer.block(parse_number(match[1], "block", 0, MAX_BLOCK))
            else:
                body = explorer.experiment(parse_number(match[1], "experiment", 1, MAX_UINT256))
            self._json(HTTPStatus.OK, body)
            return
        raise BadRequest(HTTPStatus.NOT_FOUND, f"no such page: {_clip(path)}")

    def do_POST(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "the explorer is read-only: GET only")

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_POST

    def _error(self, status: HTTPStatus, message: str) -> None:
        """A 4xx (or 502) with a short message, and its one log line."""
        message = _clip(message, _MESSAGE_CHARS)
        log.info("explorer: %s %s -> %d %s", _clip(self.command or "-", 10),
                 _clip(self.path if isinstance(getattr(self, "path", None), str) else "-"),
                 status, message)
        self._json(status, {"error": message})

    def _json(self, status: HTTPStatus, body: Any) -> None:
        self._send(status, "application/json", json.dumps(body, default=str).encode())

    def _send(self, status: HTTPStatus, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 explorer: Explorer):
        self.explorer = explorer
        super().__init__(address, handler)


class ExplorerServer(BackgroundHttpServer[_Server]):
    """The explorer on 127.0.0.1, served from a background thread while the ``with`` block
    runs (or between :meth:`start` and :meth:`stop`)."""

    def __init__(self, explorer: Explorer, port: int = 0):
        super().__init__(partial(_Server, explorer=explorer), _Handler, port, name="explorer")
        self.explorer = explorer

    @property
    def url(self) -> str:
        return super().url + "/"

    def stop(self) -> None:
        super().stop()
        self.explorer.close()


def run_explorer(rpc: str, contract: str, *, port: int, explorer_url: str | None,
                 poll: float, console: Console, from_block: int = 0,
                 store_url: str | None = None) -> None:
    """``colearn explorer``: serves until Ctrl-C; prints the page's URL on stdout.
    ``store_url``: the weight store the experiments' metadata is fetched from."""
    import sys

    from agents.chain.network import connect
    from agents.storage.store import open_store

    if poll <= 0:
        raise ValueError(f"--poll {poll}: expected a positive number of seconds")
    if explorer_url is not None and not explorer_url.startswith(("http://", "https://")):
        raise ValueError(f"--explorer-url {explorer_url!r}: expected an http(s):// URL")
    client = CollectiveLearningClient(connect(rpc), contract)
    client.check_deployed()
    client.first_block = from_block
    store = open_store(store_url) if store_url else None
    explorer = Explorer(client, explorer_url=explorer_url, poll=poll, store=store)
    with ExplorerServer(explorer, port) as server:
        sys.stdout.write(server.url + "\n")
        sys.stdout.flush()
        console.print(f"exploring {client.address} on chain {client.chain_id} (read-only); "
                      "Ctrl-C stops", style="dim")
        threading.Event().wait()

