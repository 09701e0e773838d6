"""Reproduce tkg-stream answers in Python from the announced bundle alone (README: "The model file").

usage: reproduce_bundle.py <brokers> <models topic> <schemas dir> <input.json>
input.json: {"name": bundle name, "history": [[subject, relation, object, step], ...] (names: the closed facts up to the
bundle's history step), "queries": [{"subject"|"object": name, "relation": name, "k": k}, ...]}
Prints {"version", "historyStep", "termEntries", "featureEntries", "answers": [[[entity, score], ...], ...]} as JSON
(featureEntries, for the `rules` kind: per feature name, how many term entries had it non-zero).

Reads the newest ModelAnnouncement of that name (Avro single-object encoding: 0xC3 0x01, 8-byte fingerprint, body),
takes the ONNX graph (inline, or for a large one its pieces on the chunk topic the announcement's kafka: location
names), vocabulary and term spec from it, computes the term (every kind: `none`, `recurrency`, `hybrid`
and `rules`) from the history as the README documents it, and runs the graph with onnxruntime.
"""
import hashlib
import io
import json
import math
import sys
import urllib.parse

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


def read_chunked(brokers, location, schema, name, version):
    """The ONNX file of a bundle too large to be inline: its pieces on the chunk topic (README, 'The model file')."""
    url = urllib.parse.urlparse(location)
    query = dict(urllib.parse.parse_qsl(url.query))
    topic, partition, first = url.path, int(query["partition"]), int(query["offset"])
    count, size = int(query["chunks"]), int(query["bytes"])
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "reproduce-chunks", "enable.auto.commit": False})
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    consumer.assign([TopicPartition(topic, partition, max(first, low))])
    data, seen = bytearray(size), set()
    while len(seen) < count:
        message = consumer.poll(10)
        if message is None or message.error():
            raise RuntimeError(f"chunk topic {topic}: {message.error() if message else 'no record'}")
        value = message.value()
        piece = schemaless_reader(io.BytesIO(value[10:]), schema)
        if piece["name"] == name and piece["version"] == version:
            data[piece["offset"] : piece["offset"] + len(piece["bytes"])] = piece["bytes"]
            seen.add(piece["index"])
        if message.offset() + 1 >= high and len(seen) < count:
            raise RuntimeError(f"chunk topic {topic}: pieces missing up to the log end")
    consumer.close()
    assert hashlib.sha256(data).hexdigest() == query["sha256"], "the pieces' SHA-256 differs"
    return bytes(data)


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


RULE_FEATURES = [
    "strict",
    "logStrict",
    "selfRule",
    "ruleSum",
    "ruleMax",
    "pathSum",
    "relaxed",
    "logRelaxed",
    "neighbour",
    "logPair",
    "recency",
]
MAX_PATH_SUM = 20.0


def bucket_of(bounds, value):
    """Index of the first bound >= value (len(bounds) when value exceeds them all)."""
    b = 0
    while b < len(bounds) and value > bounds[b]:
        b += 1
    return b


class RuleHistory:
    """The closed facts as the `rules` term reads them (README "The model file", src/model/rule-spec.ts).

    Relations are read as codes: 2r = r forward (subject -> object), 2r + 1 = r backwards, so every fact (s, r, o, t)
    is the edge s -2r-> o and the edge o -(2r+1)-> s at step t. Facts of relations outside the spec are ignored and a
    fact repeated within a step counts once.
    """

    def __init__(self, facts, spec):
        self.spec = spec
        R = spec["numRelations"]
        self.edges = {}  # anchor -> {entity: {code: [steps the edge anchor -code-> entity was seen]}}
        self.hops = {}  # entity -> [(code, neighbour, step)] in stream order (steps ascending, facts in step order)
        self.pointing = {}  # code -> {entity: [steps of the facts of code pointing at entity]}
        seen = set()
        for s, r, o, t in sorted(facts, key=lambda f: f[3]):  # stable: a step's facts keep their order
            if r >= R or (s, r, o, t) in seen:
                continue
            seen.add((s, r, o, t))
            for anchor, code, entity in ((s, 2 * r, o), (o, 2 * r + 1, s)):
                self.edges.setdefault(anchor, {}).setdefault(entity, {}).setdefault(code, []).append(t)
                self.hops.setdefault(anchor, []).append((code, entity, t))
                self.pointing.setdefault(code, {}).setdefault(entity, []).append(t)
        self.rules = {(head, body): confidences for head, body, confidences in spec["rules"]}
        self.paths = {(head, body1, body2): confidence for head, body1, body2, confidence in spec["paths"]}
        self.path_heads = {head for head, _, _, _ in spec["paths"]}

    def bucket(self, lag, count):
        """The confidence slot of a body edge last seen `lag` steps ago at `count` distinct steps (lag-major)."""
        spec = self.spec
        return bucket_of(spec["lagBounds"], lag) * (len(spec["countBounds"]) + 1) + bucket_of(
            spec["countBounds"], count
        )

    def features(self, step, direction, anchor, relation):
        """{candidate: [the eleven RULE_FEATURES]} of the query at forecast step `step`."""
        spec = self.spec
        if relation >= spec["numRelations"]:
            return {}
        F = {name: i for i, name in enumerate(RULE_FEATURES)}
        head = 2 * relation + (0 if direction == "object" else 1)
        x = {}

        def row(entity):
            return x.setdefault(entity, [0.0] * len(RULE_FEATURES))

        # every entity the anchor has met (any relation, either direction): recurrence and length-1 rules
        for entity, codes in self.edges.get(anchor, {}).items():
            if entity != anchor:
                f = row(entity)
                f[F["neighbour"]] = 1.0
                f[F["logPair"]] = math.log1p(sum(len(steps) for steps in codes.values()))
                f[F["recency"]] = 1.0 / max(1, step - max(steps[-1] for steps in codes.values()))
            for body, steps in codes.items():
                confidences = self.rules.get((head, body))
                c = confidences[self.bucket(step - steps[-1], len(steps))] if confidences else 0.0
                if body == head:
                    f = row(entity)
                    strict = sum(spec["decay"] ** (step - t) for t in steps)
                    f[F["strict"]] = strict
                    f[F["logStrict"]] = math.log1p(strict)
                    f[F["selfRule"]] = -math.log1p(-c)
                elif c > 0:
                    f = row(entity)
                    f[F["ruleSum"]] += -math.log1p(-c)
                    f[F["ruleMax"]] = max(f[F["ruleMax"]], c)
        # two-hop paths anchor -b1-> middle -b2-> end, both hops at most pathWindow steps old
        if spec["pathWindow"] > 0 and head in self.path_heads:
            oldest = step - spec["pathWindow"]
            middles = set()
            for body1, middle, t1 in reversed(self.hops.get(anchor, [])):  # most recent first
                if t1 < oldest:
                    break
                if middle == anchor:
                    continue
                if middle not in middles:
                    if len(middles) >= spec["pathFanout"]:
                        continue
                    middles.add(middle)
                for body2, end, t2 in reversed(self.hops.get(middle, [])):
                    if t2 < oldest:
                        break
                    c = self.paths.get((head, body1, body2))
                    if end == anchor or c is None:
                        continue
                    f = row(end)
                    f[F["pathSum"]] = min(MAX_PATH_SUM, f[F["pathSum"]] - math.log1p(-c))
        # popularity: the share of the head code's decayed facts pointing at each entity; the top ones are candidates
        decayed = {
            entity: sum(spec["relaxedDecay"] ** (step - t) for t in steps)
            for entity, steps in self.pointing.get(head, {}).items()
        }
        total = sum(decayed.values())
        share = {entity: value / total for entity, value in decayed.items()} if total > 0 else {}
        for entity, _ in sorted(share.items(), key=lambda p: (-p[1], p[0]))[: spec["relaxedTopK"]]:
            row(entity)
        for entity, f in x.items():
            f[F["relaxed"]] = share.get(entity, 0.0)
            f[F["logRelaxed"]] = math.log1p(100 * f[F["relaxed"]])
        return x

    def term_row(self, features):
        """{entity: weights . features} of one query's features (a format-1 spec has no recency weight: zip stops)."""
        weights = self.spec["weights"]
        return {entity: sum(w * v for w, v in zip(weights, f)) for entity, f in features.items()}


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
    if terms["kind"] == "rules":
        history = RuleHistory(facts, terms["spec"])
    else:
        decay = terms["weights"]["decay"] if terms["kind"] == "hybrid" else terms.get("decay", 1.0)
        history = History(facts, decay)
    feature_entries = {name: 0 for name in RULE_FEATURES}
    onnx = bundle["onnx"]
    if onnx is None:
        chunk_schema = parse_schema(json.load(open(f"{schemas}/ModelChunk.avsc")))
        onnx = read_chunked(brokers, bundle["location"], chunk_schema, bundle["name"], bundle["version"])
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    answers = []
    term_entries = 0
    for query in spec_in["queries"]:
        direction = "object" if query.get("subject") is not None else "subject"
        anchor = entity_id[query["subject"] if direction == "object" else query["object"]]
        relation = relation_id[query["relation"]]
        if terms["kind"] == "rules":
            features = history.features(bundle["step"], direction, anchor, relation)
            for f in features.values():
                for name, value in zip(RULE_FEATURES, f):
                    feature_entries[name] += value != 0
            row = history.term_row(features)
        else:
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
            {
                "version": bundle["version"],
                "historyStep": history_step,
                "termEntries": term_entries,
                "featureEntries": feature_entries,
                "answers": answers,
            }
        )
    )


if __name__ == "__main__":
    main()
