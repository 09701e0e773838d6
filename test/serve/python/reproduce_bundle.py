"""Reproduce tkg-stream answers in Python from the announced bundle alone (README: "The model file").

usage: reproduce_bundle.py <brokers> <models topic> <schemas dir> <input.json>
input.json: {"name": bundle name, "history": [[subject, relation, object, step], ...] (names: the closed facts up to the
bundle's history step), "queries": [{"subject"|"object": name, "relation": name, "k": k}, ...]}
Prints {"version", "historyStep", "termEntries", "answers": [[[entity, score], ...], ...]} as JSON.

Reads the newest ModelAnnouncement of that name (Avro single-object encoding: 0xC3 0x01, 8-byte fingerprint, body),
takes the ONNX graph, vocabulary and term spec from it, computes the term (here: the `none`, `recurrency` and `hybrid`
kinds) from the history as documented, and runs the graph with onnxruntime.
"""
import io
import json
import math
import sys

import numpy as np
import onnxruntime as ort
from confluent_kafka import Consumer, TopicPartition
from fastavro import parse_schema, schemaless_reader


def read_announcements(brokers, topic, schema):
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "reproduce-bundle", "enable.auto.commit": False})
    partition = TopicPartition(topic, 0, 0)
    low, high = consumer.get_watermark_offsets(partition, timeout=10)
    consumer.assign([TopicPartition(topic, 0, low)])
    records = []
    while low < high:
        message = consumer.poll(10)
        if message is None:
            break
        if message.error():
            raise RuntimeError(message.error())
        value = message.value()
        assert value[:2] == b"\xc3\x01", "not Avro single-object encoding"
        records.append(schemaless_reader(io.BytesIO(value[10:]), schema))
        if message.offset() + 1 >= high:
            break
    consumer.close()
    return records


class History:
    """Decayed and undecayed counts of the closed facts, as src/model/history-index.ts keeps them."""

    def __init__(self, facts, decay):
        self.decay = decay
        self.steps = {}  # (direction, anchor, relation, entity) -> sorted distinct steps of the exact fact
        self.relaxed = {}  # (direction, relation) -> {entity: [steps of each fact pointing at it]}
        seen = set()
        for s, r, o, t in facts:
            if (s, r, o, t) in seen:
                continue  # snapshots are sets
            seen.add((s, r, o, t))
            self.steps.setdefault(("object", s, r, o), []).append(t)
            self.steps.setdefault(("subject", o, r, s), []).append(t)
            self.relaxed.setdefault(("object", r), {}).setdefault(o, []).append(t)
            self.relaxed.setdefault(("subject", r), {}).setdefault(s, []).append(t)

    def strict(self, step, direction, anchor, relation):
        """{entity: (sum_i decay^(step - t_i), number of steps)} of the exact facts."""
        out = {}
        for (d, a, r, e), steps in self.steps.items():
            if d == direction and a == anchor and r == relation:
                out[e] = (sum(self.decay ** (step - t) for t in steps), len(steps))
        return out

    def relaxed_distribution(self, step, direction, relation):
        """[(entity, share)] sorted by share descending, then entity ascending."""
        weights = {
            e: sum(self.decay ** (step - t) for t in steps)
            for e, steps in self.relaxed.get((direction, relation), {}).items()
        }
        total = sum(weights.values())
        if total <= 0:
            return []
        return sorted(((e, w / total) for e, w in weights.items()), key=lambda p: (-p[1], p[0]))


def term_row(spec, history, step, direction, anchor, relation):
    """{entity: term value} of one query, per the bundle's term spec."""
    kind = spec["kind"]
    if kind == "none":
        return {}
    if kind == "recurrency":
        row = {}
        for e, share in history.relaxed_distribution(step, direction, relation):
            row[e] = row.get(e, 0.0) + spec["relaxedWeight"] * share
        for e, (value, _) in history.strict(step, direction, anchor, relation).items():
            row[e] = row.get(e, 0.0) + spec["strictWeight"] * value
        return row
    if kind == "hybrid":
        w = spec["weights"]
        R = w["numRelations"]
        F = 6
        slot = (0 if direction == "object" else R) + relation
        weights = w["history"][slot * F : (slot + 1) * F]
        dist = history.relaxed_distribution(step, direction, relation)
        share = dict(dist)
        top = [e for e, _ in dist[: w["relaxedTopK"]]]
        strict = history.strict(step, direction, anchor, relation)
        row = {}
        for e in set(top) | set(strict):
            x = [0.0] * F
            if e in strict:
                value, frequency = strict[e]
                x[0:4] = [value, math.log1p(value), 1.0, math.log1p(frequency)]
            x[4] = share.get(e, 0.0)
            x[5] = math.log1p(100 * x[4])
            row[e] = sum(wf * xf for wf, xf in zip(weights, x))
        return row
    raise ValueError(f"term kind {kind} is not reproduced here")


def main():
    brokers, topic, schemas, input_path = sys.argv[1:5]
    schema = parse_schema(json.load(open(f"{schemas}/ModelAnnouncement.avsc")))
    spec_in = json.load(open(input_path))
    bundles = [a for a in read_announcements(brokers, topic, schema) if a["name"] == spec_in["name"]]
    bundle = max(bundles, key=lambda a: a["version"])
    terms = json.loads(bundle["terms"])
    entity_id = {name: i for i, name in enumerate(bundle["entities"])}
    relation_id = {name: i for i, name in enumerate(bundle["relations"])}
    history_step = bundle["step"] - 1
    facts = [
        (entity_id[s], relation_id[r], entity_id[o], t)
        for s, r, o, t in spec_in["history"]
        if t <= history_step and s in entity_id and o in entity_id and r in relation_id
    ]
    decay = terms["weights"]["decay"] if terms["kind"] == "hybrid" else terms.get("decay", 1.0)
    history = History(facts, decay)
    session = ort.InferenceSession(bundle["onnx"], providers=["CPUExecutionProvider"])
    answers = []
    term_entries = 0
    for query in spec_in["queries"]:
        direction = "object" if query.get("subject") is not None else "subject"
        anchor = entity_id[query["subject"] if direction == "object" else query["object"]]
        relation = relation_id[query["relation"]]
        row = term_row(terms, history, bundle["step"], direction, anchor, relation)
        entities = sorted(row)
        term_entries += len(entities)
        feeds = {
            "anchor": np.array([anchor], dtype=np.int64),
            "relation": np.array([relation], dtype=np.int64),
            "direction": np.array([0 if direction == "object" else 1], dtype=np.int64),
            "extra_index": np.array([[0, e] for e in entities], dtype=np.int64).reshape(-1, 2),
            "extra_value": np.array([row[e] for e in entities], dtype=np.float32),
            "k": np.array([query["k"]], dtype=np.int64),
        }
        indices, scores = session.run(["indices", "scores"], feeds)
        answers.append(
            [[bundle["entities"][int(i)], float(s)] for i, s in zip(indices[0], scores[0])]
        )
    print(
        json.dumps(
            {"version": bundle["version"], "historyStep": history_step, "termEntries": term_entries, "answers": answers}
        )
    )


if __name__ == "__main__":
    main()
